-- GET /api/{user}/tasks/{id}: one task by id and owner.
\set id random(1, 1000000)
\set u (:id - 1) % 10000 + 1
SELECT tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at, tasks.due_date, tasks.due_at, tasks.priority, tasks.tags, tasks.version FROM tasks WHERE tasks.user_id = ('user' || lpad(:u::text, 5, '0'))::varchar AND tasks.id = :id;
