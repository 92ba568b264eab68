"""CreateFunction with security_definer=True and no search_path."""

from dbdeploy import CreateFunction, CreateSchema, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["function shop.order_count(text) is SECURITY DEFINER without search_path"]

base = Migration(version="001", name="base", operations=[CreateSchema(name="shop")])

change = Migration(
    version="002",
    name="change",
    operations=[
        CreateFunction(name="shop.order_count", args=[("p_status", "text")], returns="bigint", language="sql",
                       security_definer=True, body="SELECT 1::bigint"),
    ],
)
