"""A NUL byte in a key of a dict seed value (stored as jsonb, which cannot hold NUL)."""

from dbdeploy import Migration, SeedRows

migration = Migration(
    version="001",
    name="nul_in_jsonb_seed_key",
    operations=[SeedRows(table="app.settings", rows=[{"key": "theme", "value": {"colour\x00": "red"}}],
                         conflict_columns=["key"])],
)
