-- POST /api/{user}/tasks: insert ... returning the row.
\set u random(1, 10000)
\set n random(1, 999999)
INSERT INTO tasks (title, description, completed, user_id, completed_at, created_at, updated_at, due_date, due_at, priority, tags) VALUES (('Review quarterly report #' || :n)::varchar, ('Created by the benchmark at step ' || :n || '. Remember to check the details twice, and write down anything that changed since last time.')::varchar, false, ('user' || lpad(:u::text, 5, '0'))::varchar, NULL, now(), now(), NULL, NULL, 2, '[]') RETURNING tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at, tasks.due_date, tasks.due_at, tasks.priority, tasks.tags, tasks.version;
