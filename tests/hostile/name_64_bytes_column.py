"""A column name of exactly 64 bytes: PostgreSQL silently truncates it to 63, so two names could collide."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="name_64_bytes_column",
    operations=[AddColumn(table="app.users", column=Column(name="c" * 64, type="text"))],
)
