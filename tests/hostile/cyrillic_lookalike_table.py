"""Unicode look-alike: the table name app.users spelled with a Cyrillic 'е' (U+0435).

It would be a different table from app.users that looks the same in every review.
"""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="cyrillic_lookalike_table",
    operations=[CreateTable(table="app.us\u0435rs", columns=[Column(name="id", type="bigint")])],
)
