"""First of two specs: creates app.users (valid on its own)."""

from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(
    version="001",
    name="create_users",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint"), Column(name="email", type="text")],
                    primary_key=["id"]),
    ],
)
