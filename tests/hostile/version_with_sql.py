"""A version that carries SQL (versions go into migration_log and into file names)."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001'; DELETE FROM migrations.migration_log; --", name="version_with_sql",
                      operations=[CreateSchema(name="app")])
