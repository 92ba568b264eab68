"""Inert: `$$; DROP TABLE pwned; $$` as a column default is one dollar-quoted string constant.

It is data, so it is accepted; the bundle holds pglast's re-rendering ('; DROP TABLE pwned; '),
and no statement of the bundle may touch pwned.
"""

from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(
    version="001",
    name="dollar_quoted_string_default",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.notes", columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="body", type="text", nullable=False, default="$$; DROP TABLE pwned; $$"),
        ], primary_key=["id"]),
    ],
)
