"""A column type that closes the column list and appends a statement: `text); DROP TABLE x; --`."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="type_with_second_statement",
    operations=[AddColumn(table="app.users", column=Column(name="bio", type="text); DROP TABLE x; --"))],
)
