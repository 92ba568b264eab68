"""A migration with no operations: a bundle that does nothing but would still be recorded as applied."""

from dbdeploy import Migration

migration = Migration(version="001", name="empty_operations", operations=[])
