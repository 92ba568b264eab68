"""A migration name of 81 characters: it becomes a folder and file names (V001__<name>.sql)."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="n" * 81, operations=[CreateSchema(name="app")])
