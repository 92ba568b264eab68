"""A spec file that calls sys.exit(0) while it is imported: would end `generate` with success, writing nothing."""

import sys

from dbdeploy import CreateSchema, Migration

migration = Migration(version="001", name="spec_sys_exit", operations=[CreateSchema(name="app")])
sys.exit(0)
