"""RawSQL that is not valid SQL (a typo of DROP)."""

from dbdeploy import Migration, RawSQL

migration = Migration(
    version="001",
    name="raw_sql_invalid",
    operations=[RawSQL(forward="CREATE TABLE app.t (id int);", rollback="DRPO TABLE app.t;")],
)
