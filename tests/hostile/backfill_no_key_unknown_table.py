"""A backfill without a key on a table no spec created: there is no known key to batch by."""

from dbdeploy import Backfill, Migration

migration = Migration(
    version="001",
    name="backfill_no_key_unknown_table",
    operations=[Backfill(table="legacy.customers", set={"country": "upper(country)"})],
)
