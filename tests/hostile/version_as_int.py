"""A version given as an int: 010 and 10 would be the same number but different folder names."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version=10, name="version_as_int", operations=[CreateSchema(name="app")])
