"""Inert: expressions that end in a comment meant to swallow what the generator puts after them.

`0 -- ), DROP TABLE pwned` and `id > 0 /* ) OR true */` parse as one expression each; the bundle
holds pglast's rendering, which has no comment left to swallow anything.
"""

from dbdeploy import AddCheck, AddColumn, Check, Column, CreateSchema, CreateTable, Migration

migration = Migration(
    version="001",
    name="comment_in_expression",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.scores", columns=[Column(name="id", type="bigint", identity=True)],
                    primary_key=["id"]),
        AddColumn(table="app.scores", column=Column(name="score", type="integer", default="0 -- ), DROP TABLE pwned")),
        AddCheck(table="app.scores", check=Check(expression="id > 0 /* ) OR true; DROP TABLE pwned; */")),
    ],
)
