"""A double quote inside a column name: would end a quoted identifier if it were not doubled."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="double_quote_in_name",
    operations=[AddColumn(table="app.users", column=Column(name='nick"name', type="text"))],
)
