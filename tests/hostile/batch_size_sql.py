"""A backfill batch size given as text with SQL (it is written into LIMIT)."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="batch_size_sql",
    operations=[Backfill(table="app.users", set={"status": "'active'"}, key=["id"], batch_size="100; DROP TABLE x")],
)
