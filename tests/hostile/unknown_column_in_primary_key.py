"""A primary key over a column the table does not have (a typo)."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="unknown_column_in_primary_key",
    operations=[CreateTable(table="app.users", columns=[Column(name="id", type="bigint")], primary_key=["user_id"])],
)
