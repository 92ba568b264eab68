"""A spec file that builds its Migration but never assigns it to a module-level name."""

from dbdeploy import CreateSchema, Migration


def migration():
    return Migration(version="001", name="spec_without_migration", operations=[CreateSchema(name="app")])
