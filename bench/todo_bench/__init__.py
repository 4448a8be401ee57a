"""The benchmark of issues 4 and 12: `make bench` (or `.venv/bin/python bench/run.py`).

One command, on one machine:

1. Starts a private PostgreSQL cluster (initdb in a temporary directory, a free port, fsync on),
   or uses `BENCH_DATABASE_URL`, and applies the Alembic migrations.
2. Seeds 10,000 users with 100 tasks each plus one `heavy` user with 10,000 tasks, in SQL,
   with priorities, due dates and times, and tags (in tasks.tags and task_tags).
3. For each worker count (`--workers`, default 1 as `make run` and one per core as `make
   serve`), starts the API as production runs it (`python -m todo_api`, LOG_LEVEL=warning) and
   the floor app beside it (todo_bench/floor.py: the same SQL on the bare driver pool).
4. Drives every endpoint with wrk (bench/wrk/*.lua) at 1, 16, 64 and 256 connections, the floor
   with the same scripts at 16, 64 and 256, cell by cell in turn; once, runs the same
   statements with pgbench (bench/pgbench/*.sql, `-M prepared`) at 1, 16 and 64 clients: the
   ceiling.
5. With the most workers: checks that a list's first page costs the same on 1,000 or 1,000,000
   rows and for 100 or 10,000 tasks; measures the 10,000-task user's first page for each sort
   and filter of issue 14 and EXPLAINs their statements (todo_bench/queries.py); times the
   planning of the worst listing a request can ask for, and reads each worker's RSS across
   10,000 distinct listings (issue 20, todo_bench/bounded.py); profiles the list and read
   endpoints with py-spy; reads each worker's RSS.
6. Prints the report and writes it between the markers in docs/benchmarks.md.

Everything it starts (cluster, servers, wrk, pgbench, py-spy) is stopped on the way out, also
on failure or Ctrl-C. Raw outputs go to bench/out/.

Modules: common (paths, targets, `run`), procfs, cluster, data, servers, load (wrk), ceiling
(pgbench), profiling, floor (the floor app), queries (issue 14's list queries as the API sends
them), bounded (issue 20's worst listing and distinct listings), cells (one endpoint's cells,
the scale check, the list queries), report and targets (the Markdown), __main__ (arguments
and the order of the run).
"""
