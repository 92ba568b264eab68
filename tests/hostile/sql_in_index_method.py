"""SQL smuggled into an index method (USING <method>), which is keyword text, not a name."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="sql_in_index_method",
    operations=[
        CreateIndex(table="app.users",
                    index=Index(columns=["email"], method="btree (email); DROP TABLE app.users; --")),
    ],
)
