"""Wrong field type: an int where a column name (str) is expected."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="int_where_str",
    operations=[AddColumn(table="app.users", column=Column(name=42, type="text"))],
)
