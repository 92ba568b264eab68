"""Wrong field type: a list of SQL assignments where Backfill.set needs a dict of column -> expression."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="list_where_dict",
    operations=[Backfill(table="app.users", set=["status = 'active'"], key=["id"])],
)
