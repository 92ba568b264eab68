"""A column default that closes the column definition and appends a second statement."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="default_second_statement",
    operations=[AddColumn(table="app.users",
                          column=Column(name="created_at", type="timestamptz", default="now()); DROP TABLE x; --"))],
)
