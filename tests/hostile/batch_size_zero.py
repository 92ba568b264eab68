"""A backfill batch size of 0: the batch loop would never make progress."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="batch_size_zero",
    operations=[Backfill(table="app.users", set={"status": "'active'"}, key=["id"], batch_size=0)],
)
