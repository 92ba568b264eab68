"""A value followed by a dollar-quoted string: `0 $$; DROP TABLE x; $$` is not one expression."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="dollar_quote_after_value",
    operations=[AddColumn(table="app.users",
                          column=Column(name="score", type="integer", default="0 $$; DROP TABLE x; $$"))],
)
