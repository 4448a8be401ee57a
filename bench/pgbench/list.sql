-- GET /api/{user}/tasks: the default page (newest 100) and the total in one statement,
-- as todo_api.db.tasks.list_tasks sends it. Run with -D users=N (user00001..userN).
\set u random(1, :users)
SELECT tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at, tasks.due_date, tasks.due_at, tasks.priority, tasks.tags, tasks.version, (SELECT count(*) AS count_1 FROM tasks WHERE tasks.user_id = ('user' || lpad(:u::text, 5, '0'))::varchar) AS total FROM tasks WHERE tasks.user_id = ('user' || lpad(:u::text, 5, '0'))::varchar ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT 100 OFFSET 0;
