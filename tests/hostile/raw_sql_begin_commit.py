"""RawSQL with its own COMMIT: would end the step's transaction early and break atomicity."""

from dbdeploy import Migration, RawSQL

migration = Migration(
    version="001",
    name="raw_sql_begin_commit",
    operations=[RawSQL(forward="UPDATE app.users SET status = 'x'; COMMIT; BEGIN;", rollback="SELECT 1;")],
)
