"""RawSQL CREATE FUNCTION … SECURITY DEFINER without SET search_path."""

from dbdeploy import CreateSchema, Migration, RawSQL

EXPECT = ["function shop.order_count is SECURITY DEFINER without SET search_path"]

base = Migration(version="001", name="base", operations=[CreateSchema(name="shop")])

change = Migration(
    version="002",
    name="change",
    operations=[
        RawSQL(
            forward=("CREATE FUNCTION shop.order_count(p_status text) RETURNS bigint LANGUAGE sql SECURITY DEFINER "
                     "AS $$ SELECT 1::bigint $$"),
            rollback="DROP FUNCTION shop.order_count(text)",
        ),
    ],
)
