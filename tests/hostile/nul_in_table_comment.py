"""A NUL byte in a table comment (COMMENT ON TABLE ... IS '<comment>')."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="nul_in_table_comment",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint")], comment="users\x00 hidden"),
    ],
)
