"""A NUL byte in a table name: C strings end at NUL, so the server would see a different name."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="nul_in_table_name",
    operations=[
        CreateTable(table="app.users\x00; DROP TABLE app.accounts", columns=[Column(name="id", type="bigint")]),
    ],
)
