"""Exit statuses of `python -m todo_api` and of the migrations: one meaning each.

Supervisors and deploy scripts branch on them: 2 and 3 need a person, 4 and 5 may pass.
1 stays Python's own, for a crash (with its traceback).
"""

#: Stopped on SIGTERM or SIGINT after draining (the server); migrated (the migrations).
STOPPED = 0
#: An invalid setting, or a database that refuses the configuration.
MISCONFIGURED = 2
#: The database's schema is not at the migration this code needs.
SCHEMA_NOT_MIGRATED = 3
#: The database could not be reached within DB_STARTUP_WAIT_SECONDS (the migrations).
DATABASE_UNREACHABLE = 4
#: HOST:PORT cannot be listened on: in use by another process, or not an address of this host.
CANNOT_LISTEN = 5
