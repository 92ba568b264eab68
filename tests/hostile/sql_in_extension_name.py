"""SQL smuggled into an extension name (CREATE EXTENSION <name>)."""

from dbdeploy import Migration, RequireExtension

migration = Migration(
    version="001",
    name="sql_in_extension_name",
    operations=[RequireExtension(name="pgcrypto; DROP SCHEMA public CASCADE; --", create=True)],
)
