"""The safe form the fix points at: RenameTable(online=True), then a Contract."""

from dbdeploy import Column, Contract, CreateSchema, CreateTable, Migration, RenameTable

base = Migration(version="001", name="base", operations=[
    CreateSchema(name="shop"),
    CreateTable(table="shop.orders", columns=[Column(name="id", type="bigint", identity=True)], primary_key=["id"]),
])

expand = Migration(version="002", name="expand", operations=[
    RenameTable(table="shop.orders", new_name="shop.purchases", online=True),
])

contract = Migration(version="003", name="contract", operations=[Contract(version="002")])
