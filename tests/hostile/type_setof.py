"""A set-returning type (`SETOF int`), which only functions can return, as a column type."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="type_setof",
    operations=[AddColumn(table="app.users", column=Column(name="tags", type="SETOF int"))],
)
