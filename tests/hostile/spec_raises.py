"""A spec file that raises while it is imported."""

from dbdeploy import CreateSchema, Migration

SCHEMAS = {"app": "app"}

migration = Migration(version="001", name="spec_raises", operations=[CreateSchema(name=SCHEMAS["ap"])])
