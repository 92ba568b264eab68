"""Inert: valid snake_case names that are SQL and PL/pgSQL keywords (select, end, user, order, begin).

They are always written quoted, so they cannot change the meaning of a statement or of the
PL/pgSQL blocks around them.
"""

from dbdeploy import (
    AddColumn,
    Backfill,
    Column,
    CreateIndex,
    CreateSchema,
    CreateTable,
    Index,
    Migration,
    SeedRows,
    Unique,
)

migration = Migration(
    version="001",
    name="keyword_names",
    operations=[
        CreateSchema(name="select"),
        CreateTable(table="select.order", columns=[
            Column(name="user", type="bigint"),
            Column(name="end", type="text", nullable=False),
        ], primary_key=["user"], uniques=[Unique(columns=["end"], name="begin")]),
        SeedRows(table="select.order", rows=[{"user": 1, "end": "loop"}], conflict_columns=["user"]),
        AddColumn(table="select.order", column=Column(name="declare", type="text")),
        Backfill(table="select.order", set={"declare": '"end"'}, where='"declare" IS NULL'),
        CreateIndex(table="select.order", index=Index(columns=['lower("end")'], name="commit")),
    ],
)
