"""A backfill batch size of 10**12: one batch would lock the whole table for the whole update."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="batch_size_huge",
    operations=[Backfill(table="app.users", set={"status": "'active'"}, key=["id"], batch_size=10**12)],
)
