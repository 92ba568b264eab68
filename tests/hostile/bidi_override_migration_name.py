"""A right-to-left override (U+202E) in the migration name: the folder name would display reversed."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="add_\u202eusers", operations=[CreateSchema(name="app")])
