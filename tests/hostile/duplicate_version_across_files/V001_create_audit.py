"""Second of two specs that claim the same version, spelled differently: "1" is version 001 too."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="1", name="create_audit", operations=[CreateSchema(name="audit")])
