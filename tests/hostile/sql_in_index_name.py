"""SQL smuggled into an explicit index name (CREATE INDEX <name> ON ...)."""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="001",
    name="sql_in_index_name",
    operations=[
        CreateIndex(
            table="app.users",
            index=Index(columns=["email"], name="users_email_idx ON app.users (email); DROP TABLE app.users; --"),
        ),
    ],
)
