"""Unicode look-alike: full-width letters (U+FF49 U+FF44) for the primary key column 'id'."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="fullwidth_primary_key",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint")], primary_key=["\uff49\uff44"]),
    ],
)
