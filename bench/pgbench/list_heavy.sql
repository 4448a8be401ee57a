-- The list statement for the one user with 10,000 tasks.
SELECT tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, tasks.completed_at, tasks.created_at, tasks.updated_at, (SELECT count(*) AS count_1 FROM tasks WHERE tasks.user_id = 'heavy'::varchar) AS total FROM tasks WHERE tasks.user_id = 'heavy'::varchar ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT 100 OFFSET 0;
