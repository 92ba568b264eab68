"""A migration name with a path: the bundle folder is V<version>__<name>, so this would write outside --out."""

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="x/../../../etc/cron.d/evil", operations=[CreateSchema(name="app")])
