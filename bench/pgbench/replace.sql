-- PUT /api/{user}/tasks/{id}: new title and description; updated_at moves only if a value differs.
\set id random(1, 1000000)
\set u (:id - 1) % 10000 + 1
\set n random(1, 999999)
UPDATE tasks SET title = ('Pay electricity bill #' || :n)::varchar, description = ('Created by the benchmark at step ' || :n || '. Remember to check the details twice, and write down anything that changed since last time.')::varchar, updated_at = CASE WHEN (tasks.title IS DISTINCT FROM ('Pay electricity bill #' || :n)::varchar OR tasks.description IS DISTINCT FROM ('Created by the benchmark at step ' || :n || '. Remember to check the details twice, and write down anything that changed since last time.')::varchar) THEN now() ELSE tasks.updated_at END WHERE tasks.user_id = ('user' || lpad(:u::text, 5, '0'))::varchar AND tasks.id = :id RETURNING tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at;
