"""A backfill predicate that tries to close the generator's own DO $dbdeploy$ block and run a statement."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="dbdeploy_tag_closes_do_block",
    operations=[Backfill(table="app.users", set={"status": "'active'"},
                         where="true $dbdeploy$; DROP TABLE app.users; DO $dbdeploy$ BEGIN", key=["id"])],
)
