"""A backslash in an INCLUDE column: an escape character for E'' strings and some clients."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="backslash_in_name",
    operations=[CreateIndex(table="app.users", index=Index(columns=["email"], include=["id\\'"]))],
)
