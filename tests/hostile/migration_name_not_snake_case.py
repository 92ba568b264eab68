"""A migration name with spaces and capitals."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="Create App Schema", operations=[CreateSchema(name="app")])
