"""A backfill whose WHERE reads a column the table (created in the same migration) does not have."""

from dbdeploy import Backfill, Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="unknown_column_in_backfill_where",
    operations=[
        CreateTable(table="app.users", columns=[Column(name="id", type="bigint"), Column(name="status", type="text")],
                    primary_key=["id"]),
        Backfill(table="app.users", set={"status": "'active'"}, where="deleted_at IS NULL"),
    ],
)
