"""An online rename that no later migration contracts."""

from dbdeploy import Column, CreateSchema, CreateTable, Migration, RenameColumn, RenameTable

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["shop.orders.note → memo", "shop.customers → shop.clients"]

base = Migration(version="001", name="base", operations=[
    CreateSchema(name="shop"),
    CreateTable(table="shop.orders", columns=[Column(name="id", type="bigint", identity=True),
                                              Column(name="note", type="text")], primary_key=["id"]),
    CreateTable(table="shop.customers", columns=[Column(name="id", type="bigint", identity=True)],
                primary_key=["id"]),
])

change = Migration(version="002", name="change", operations=[
    RenameColumn(table="shop.orders", column="note", new_name="memo", online=True),
    RenameTable(table="shop.customers", new_name="shop.clients", online=True),
])
