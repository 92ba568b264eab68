"""DropIndex of an index no spec created: its rollback would have nothing to rebuild it from."""

from dbdeploy import DropIndex, Migration

migration = Migration(
    version="001",
    name="drop_index_unknown",
    operations=[DropIndex(name="app.users_email_idx")],
)
