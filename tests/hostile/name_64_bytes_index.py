"""An explicit index name of 64 bytes: truncated by PostgreSQL, so the idempotency guard would look
for a name that never exists and the index would be built again on every run."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="name_64_bytes_index",
    operations=[CreateIndex(table="app.users", index=Index(columns=["email"], name="users_email_" + "x" * 52))],
)
