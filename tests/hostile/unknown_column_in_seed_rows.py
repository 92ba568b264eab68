"""Seed rows with a column the table (created in the same migration) does not have."""

from dbdeploy import Column, CreateTable, Migration, SeedRows

migration = Migration(
    version="001",
    name="unknown_column_in_seed_rows",
    operations=[
        CreateTable(table="app.roles", columns=[Column(name="code", type="text"), Column(name="label", type="text")],
                    primary_key=["code"]),
        SeedRows(table="app.roles", rows=[{"code": "admin", "label": "Admin", "is_super": True}],
                 conflict_columns=["code"]),
    ],
)
