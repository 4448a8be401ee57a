-- PATCH /api/{user}/tasks/{id}/complete without a body: flip completion in one statement.
\set id random(1, 1000000)
\set u (:id - 1) % 10000 + 1
UPDATE tasks SET completed = NOT tasks.completed, completed_at = CASE WHEN tasks.completed THEN NULL ELSE now() END, updated_at = now(), version = tasks.version + 1 WHERE tasks.user_id = ('user' || lpad(:u::text, 5, '0'))::varchar AND tasks.id = :id RETURNING tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at, tasks.due_date, tasks.due_at, tasks.priority, tasks.tags, tasks.version;
