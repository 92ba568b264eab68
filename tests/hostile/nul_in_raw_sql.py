"""A NUL byte in RawSQL: what a reviewer reads and what the server runs would differ."""

from dbdeploy import Migration, RawSQL

migration = Migration(
    version="001",
    name="nul_in_raw_sql",
    operations=[RawSQL(forward="SELECT 1;\x00 DROP TABLE app.users;", rollback="SELECT 1;")],
)
