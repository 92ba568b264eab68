"""A schema part of 64 bytes in a qualified table name (the table part itself is short)."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="name_64_bytes_schema",
    operations=[CreateTable(table="s" * 64 + ".users", columns=[Column(name="id", type="bigint")])],
)
