"""A NUL byte inside a column default: would truncate the statement where the server reads it."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="nul_in_default",
    operations=[
        AddColumn(table="app.users", column=Column(name="status", type="text", default="'new'\x00; DROP TABLE x")),
    ],
)
