"""A NUL byte in a column comment (COMMENT ON COLUMN ... IS '<comment>')."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="nul_in_column_comment",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint", comment="user id\x00 hidden")]),
    ],
)
