"""A spec file that raises a BaseException subclass (not an Exception), which escapes `except Exception`."""

from dbdeploy import CreateSchema, Migration


class Abort(BaseException):
    pass


migration = Migration(version="001", name="spec_raises_base_exception", operations=[CreateSchema(name="app")])
raise Abort("stop the generator")
