"""A NUL byte in the migration description (a header comment and a migration_log value)."""

from dbdeploy import CreateSchema, Migration

migration = Migration(
    version="001",
    name="nul_in_description",
    description="Create the app schema.\x00\nDROP TABLE app.users;",
    operations=[CreateSchema(name="app")],
)
