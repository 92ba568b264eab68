"""A line comment in a column type that would swallow the rest of the column definition
(the closing parenthesis, NOT NULL, DEFAULT) if the type were pasted into the statement."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="line_comment_swallows_type",
    operations=[CreateTable(table="app.users",
                            columns=[Column(name="id", type="bigint"), Column(name="email", type="text --")])],
)
