"""Names created in quoted mixed case: a table with its columns and the names derived from it, a column
added to an existing ORM table, and an index and a constraint named in mixed case."""

from dbdeploy import AddCheck, AddColumn, Check, Column, CreateIndex, CreateTable, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = [
    'table "Orders" is created',
    'column of public.Orders "Id" is created',
    'column of public.Orders "CustomerName" is created',
    'primary key of public.Orders "Orders_pkey" is created',
    'index of public.Orders "Orders_CustomerName_idx" is created',
    'column of public.AspNetUsers "DisplayName" is created',
    'index of public.AspNetUsers "IX_Email" is created',
    'constraint of public.aspnet_audit "ScorePositive" is created',
]

base = Migration(
    version="001",
    name="base",
    operations=[
        CreateTable(table='"Orders"', columns=[Column(name='"Id"', type="bigint"),
                                                Column(name='"CustomerName"', type="text")],
                    primary_key=['"Id"'], indexes=[Index(columns=['"CustomerName"'])]),
        CreateTable(table="aspnet_audit", columns=[Column(name="id", type="bigint"),
                                                   Column(name="score", type="integer")], primary_key=["id"]),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        # the existing ORM table is addressed quoted (no finding); what is created in it is
        AddColumn(table='public."AspNetUsers"', column=Column(name='"DisplayName"', type="text")),
        CreateIndex(table='public."AspNetUsers"', index=Index(columns=['"Email"'], name='"IX_Email"')),
        AddCheck(table="aspnet_audit", check=Check(expression="score > 0", name='"ScorePositive"')),
    ],
)
