"""A foreign key of a new table over a column the table does not have."""

from dbdeploy import Column, CreateTable, ForeignKey, Migration

migration = Migration(
    version="001",
    name="unknown_column_in_foreign_key",
    operations=[
        CreateTable(table="app.orders",
                    columns=[Column(name="id", type="bigint"), Column(name="user_id", type="bigint")],
                    primary_key=["id"],
                    foreign_keys=[ForeignKey(columns=["customer_id"], references="app.users", ref_columns=["id"])]),
    ],
)
