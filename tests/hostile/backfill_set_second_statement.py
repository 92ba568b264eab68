"""A backfill value that ends the UPDATE and deletes every row (inside the batch DO block)."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="backfill_set_second_statement",
    operations=[Backfill(table="app.users", set={"status": "'active'; DELETE FROM app.users"}, key=["id"])],
)
