"""An unknown field (a misspelt `nullable`) that would otherwise be silently ignored: the column
would be created NULL-able."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="unknown_field",
    operations=[AddColumn(table="app.users", column=Column(name="email", type="text", nulable=False))],
)
