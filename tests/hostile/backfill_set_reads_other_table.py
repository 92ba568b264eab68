"""A backfill value that adds a FROM clause to read another table (data exfiltration into a column)."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="backfill_set_reads_other_table",
    operations=[Backfill(table="app.users", set={"nickname": "rolpassword FROM pg_catalog.pg_authid"}, key=["id"])],
)
