"""The label is added by AddEnumValue (its own step outside a transaction) and used by a later RawSQL."""

from dbdeploy import AddEnumValue, Column, CreateEnum, CreateTable, Migration, RawSQL

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
        AddEnumValue(type="public.ticket_status", value="escalated", after="open"),
        RawSQL(
            forward="UPDATE public.tickets SET status = 'escalated' WHERE id < 10",
            rollback="UPDATE public.tickets SET status = 'open' WHERE status::text = 'escalated'",
        ),
    ],
)
