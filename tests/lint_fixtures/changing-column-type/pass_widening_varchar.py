"""varchar(n) → a longer varchar, and varchar → text: PostgreSQL changes only the catalog (no rewrite)."""

from dbdeploy import Column, CreateTable, Migration, RawSQL

base = Migration(
    version="001",
    name="base",
    operations=[
        CreateTable(
            table="public.people",
            columns=[
                Column(name="id", type="bigint", nullable=False),
                Column(name="email", type="varchar(40)", nullable=False),
                Column(name="nick", type="character varying(20)"),
            ],
            primary_key=["id"],
            allow={"prefer-text": "an ORM-made table kept as it is"},
        ),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        RawSQL(
            forward="ALTER TABLE public.people ALTER COLUMN email TYPE varchar(200);"
                    " ALTER TABLE public.people ALTER COLUMN nick TYPE text",
            rollback="-- the wider types are kept",
            allow={"missing-rollback": "narrowing back would rewrite the table; the wider types are harmless"},
        ),
    ],
)
