"""SQL smuggled into a seed row's column name (INSERT INTO t (<column>) VALUES ...)."""

from dbdeploy import Migration, SeedRows

migration = Migration(
    version="001",
    name="sql_in_seed_column_name",
    operations=[
        SeedRows(table="app.roles", rows=[{"code": "admin", "label) VALUES ('x'); DROP TABLE app.roles; --": "x"}],
                 conflict_columns=["code"]),
    ],
)
