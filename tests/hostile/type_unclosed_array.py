"""A malformed array type with an unclosed bracket (`int[`)."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="type_unclosed_array",
    operations=[AddColumn(table="app.users", column=Column(name="scores", type="int["))],
)
