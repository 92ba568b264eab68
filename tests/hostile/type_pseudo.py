"""A pseudo-type (`trigger`) that exists in pg_catalog but cannot be the type of a column."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="type_pseudo",
    operations=[AddColumn(table="app.users", column=Column(name="hook", type="trigger"))],
)
