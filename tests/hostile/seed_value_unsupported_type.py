"""A seed value of a type dbdeploy cannot turn into a literal (bytes)."""

from dbdeploy import Migration, SeedRows

migration = Migration(
    version="001",
    name="seed_value_unsupported_type",
    operations=[SeedRows(table="app.files", rows=[{"name": "a", "data": b"\x00\x01"}], conflict_columns=["name"])],
)
