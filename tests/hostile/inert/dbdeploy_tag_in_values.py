"""Inert: the generator's own dollar-quote tag, $dbdeploy$, inside values that end up in its DO blocks.

A CHECK and a column comment of a new table (created inside DO $dbdeploy$ ... $dbdeploy$), and a
backfill value (run inside the batch DO block) all contain `$dbdeploy$; DROP TABLE pwned; --`.
If the tag were not chosen to be absent from the body, the block would end early and the rest
would run as SQL.
"""

from dbdeploy import AddColumn, Backfill, Check, Column, CreateSchema, CreateTable, Migration

PAYLOAD = "$dbdeploy$; DROP TABLE pwned; --"

migration = Migration(
    version="001",
    name="dbdeploy_tag_in_values",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.notes", columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="body", type="text", comment=PAYLOAD),
        ], primary_key=["id"], checks=[Check(expression=f"body <> '{PAYLOAD}'")], comment=PAYLOAD),
        AddColumn(table="app.notes", column=Column(name="tag", type="text")),
        Backfill(table="app.notes", set={"tag": f"'{PAYLOAD}' || body"}, where=f"body <> '{PAYLOAD}'"),
    ],
)
