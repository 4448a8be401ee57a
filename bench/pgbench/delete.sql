-- DELETE /api/{user}/tasks/{id}: each client deletes its own slice of the delete pool in
-- order (pgbench keeps :n per client between transactions; start it with -D n=0).
\set n :n + 1
\set k :client_id * :slice + :n
\set o (:k - 1) % 1000 + 1
\set id 5000000 + :k
DELETE FROM tasks WHERE tasks.user_id = ('gone' || lpad(:o::text, 4, '0'))::varchar AND tasks.id = :id RETURNING tasks.id;
