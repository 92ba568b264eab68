"""ALTER TYPE … ADD VALUE and an UPDATE to the new label in one RawSQL (one transaction)."""

from dbdeploy import Column, CreateEnum, CreateTable, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["UPDATE public.tickets"]

base = Migration(
    version="001",
    name="base",
    operations=[
        CreateEnum(name="public.ticket_status", values=["open", "closed"]),
        CreateTable(
            table="public.tickets",
            columns=[
                Column(name="id", type="bigint", identity=True),
                Column(name="status", type="public.ticket_status", nullable=False, default="'open'"),
            ],
            primary_key=["id"],
        ),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        RawSQL(
            forward=("ALTER TYPE public.ticket_status ADD VALUE 'escalated' AFTER 'open';"
                     " UPDATE public.tickets SET status = 'escalated' WHERE id < 10"),
            rollback="UPDATE public.tickets SET status = 'open' WHERE status::text = 'escalated'",
        ),
    ],
)
