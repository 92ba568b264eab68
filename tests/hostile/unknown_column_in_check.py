"""A CHECK of a new table that reads a column the table does not have."""

from dbdeploy import Check, Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="unknown_column_in_check",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint"), Column(name="age", type="integer")],
                    primary_key=["id"], checks=[Check(expression="agee >= 0")]),
    ],
)
