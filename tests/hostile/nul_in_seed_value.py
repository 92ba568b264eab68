"""A NUL byte in a seed value: PostgreSQL text cannot hold it, a C client would cut the literal short."""

from dbdeploy import Migration, SeedRows

migration = Migration(
    version="001",
    name="nul_in_seed_value",
    operations=[SeedRows(table="app.roles", rows=[{"code": "admin\x00'); DROP TABLE app.roles; --"}],
                         conflict_columns=["code"])],
)
