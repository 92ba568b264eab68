"""A spec file with a Python syntax error (an unclosed parenthesis). Excluded from ruff (ruff.toml)."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="spec_syntax_error", operations=[CreateSchema(name="app")]
