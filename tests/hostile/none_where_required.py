"""Wrong field type: None for a column's required type."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="none_where_required",
    operations=[AddColumn(table="app.users", column=Column(name="status", type=None))],
)
