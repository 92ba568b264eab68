"""A spec file that imports a model the DSL does not have (DropDatabase)."""

from dbdeploy import DropDatabase, Migration  # noqa: F401

migration = Migration(version="001", name="spec_imports_unknown_model", operations=[])
