"""A spec file that imports a model the DSL does not have (CreateView)."""

from dbdeploy import CreateView, Migration  # noqa: F401

migration = Migration(version="001", name="spec_imports_unknown_model", operations=[])
