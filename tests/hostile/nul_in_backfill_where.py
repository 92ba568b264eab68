"""A NUL byte in a backfill predicate, with a second statement behind it."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="nul_in_backfill_where",
    operations=[Backfill(table="app.users", set={"status": "'active'"}, where="status IS NULL\x00; DROP TABLE x",
                         key=["id"])],
)
