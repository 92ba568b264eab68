"""The safe form the fix points at: RenameColumn(online=True), then a Contract."""

from dbdeploy import Column, Contract, CreateSchema, CreateTable, Migration, RenameColumn

base = Migration(version="001", name="base", operations=[
    CreateSchema(name="shop"),
    CreateTable(table="shop.orders", columns=[Column(name="id", type="bigint", identity=True),
                                              Column(name="note", type="text")], primary_key=["id"]),
])

expand = Migration(version="002", name="expand", operations=[
    RenameColumn(table="shop.orders", column="note", new_name="memo", online=True),
])

contract = Migration(version="003", name="contract", operations=[Contract(version="002")])
