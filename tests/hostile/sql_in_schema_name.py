"""SQL smuggled into a schema name: CREATE SCHEMA app; DROP SCHEMA public CASCADE."""

from dbdeploy import CreateSchema, Migration

migration = Migration(
    version="001",
    name="sql_in_schema_name",
    operations=[CreateSchema(name="app; DROP SCHEMA public CASCADE")],
)
