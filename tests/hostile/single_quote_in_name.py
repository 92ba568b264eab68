"""A single quote in a table name: the name is also written into string literals (to_regclass('...'))."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="single_quote_in_name",
    operations=[CreateTable(table="app.o'reilly", columns=[Column(name="id", type="bigint")])],
)
