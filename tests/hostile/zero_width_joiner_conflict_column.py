"""An invisible zero-width joiner (U+200D) inside a seed conflict column: 'code' and 'co\u200dde' look the same."""

from dbdeploy import Migration, SeedRows

migration = Migration(
    version="001",
    name="zero_width_joiner_conflict_column",
    operations=[SeedRows(table="app.roles", rows=[{"co\u200dde": "admin"}], conflict_columns=["co\u200dde"])],
)
