"""Wrong field type: a plain dict in the operations list, dressed up like an operation."""

from dbdeploy import CreateSchema, Migration

migration = Migration(
    version="001",
    name="dict_as_operation",
    operations=[CreateSchema(name="app"), {"kind": "raw_sql", "forward": "DROP TABLE app.users"}],
)
