"""A type that does not exist (a typo of integer): it parses, but would only fail on the server,
halfway through a deployment."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="type_does_not_exist",
    operations=[AddColumn(table="app.users", column=Column(name="age", type="integr"))],
)
