"""A line comment in an index key that would swallow the closing parenthesis and the WHERE clause."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="line_comment_swallows_index_key",
    operations=[CreateIndex(table="app.users", index=Index(columns=["lower(email) --"], where="deleted_at IS NULL"))],
)
