"""An index of a new table over a column the table does not have."""

from dbdeploy import Column, CreateTable, Index, Migration

migration = Migration(
    version="001",
    name="unknown_column_in_index",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint"), Column(name="email", type="text")],
                    primary_key=["id"], indexes=[Index(columns=["lower(e_mail)"])]),
    ],
)
