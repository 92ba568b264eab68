"""A version of 11 digits (at most 10 are allowed)."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="20240101120", name="version_too_long", operations=[CreateSchema(name="app")])
