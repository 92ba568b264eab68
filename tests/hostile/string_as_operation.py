"""Wrong field type: a SQL string in the operations list instead of an operation model."""

from dbdeploy import CreateSchema, Migration

migration = Migration(
    version="001",
    name="string_as_operation",
    operations=[CreateSchema(name="app"), "DROP TABLE app.users"],
)
