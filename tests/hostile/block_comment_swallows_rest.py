"""An unterminated block comment in a CHECK: everything after it would become comment text."""

from dbdeploy import AddCheck, Check, Migration

migration = Migration(
    version="001",
    name="block_comment_swallows_rest",
    operations=[AddCheck(table="app.users", check=Check(expression="id > 0 /* the rest of the bundle"))],
)
