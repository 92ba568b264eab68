"""A partial-index predicate that turns into a set operation (UNION SELECT ...)."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="index_where_union",
    operations=[CreateIndex(table="app.users",
                            index=Index(columns=["email"], where="true UNION SELECT rolname FROM pg_roles"))],
)
