"""SECURITY DEFINER with a pinned search_path, in both forms; and a SECURITY INVOKER function."""

from dbdeploy import CreateFunction, CreateSchema, Migration, RawSQL

base = Migration(version="001", name="base", operations=[CreateSchema(name="shop")])

change = Migration(
    version="002",
    name="change",
    operations=[
        CreateFunction(name="shop.order_count", args=[("p_status", "text")], returns="bigint", language="sql",
                       security_definer=True, search_path="pg_catalog, shop", body="SELECT 1::bigint"),
        CreateFunction(name="shop.plain", returns="bigint", language="sql", body="SELECT 2::bigint"),
        RawSQL(
            forward=("CREATE FUNCTION shop.order_total(p_status text) RETURNS bigint LANGUAGE sql SECURITY DEFINER "
                     "SET search_path = pg_catalog, shop AS $$ SELECT 1::bigint $$"),
            rollback="DROP FUNCTION shop.order_total(text)",
        ),
    ],
)
