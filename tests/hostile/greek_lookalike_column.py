"""Unicode look-alike: a column 'code' spelled with a Greek omicron (U+03BF) in a foreign key."""

from dbdeploy import AddForeignKey, ForeignKey, Migration

migration = Migration(
    version="001",
    name="greek_lookalike_column",
    operations=[
        AddForeignKey(table="app.orders",
                      foreign_key=ForeignKey(columns=["role_c\u03bfde"], references="app.roles", ref_columns=["code"])),
    ],
)
