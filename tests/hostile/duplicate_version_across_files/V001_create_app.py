"""First of two specs that claim the same version: "001"."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="create_app", operations=[CreateSchema(name="app")])
