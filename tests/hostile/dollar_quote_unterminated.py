"""An unterminated dollar quote in a default: would turn the rest of the file into one string."""

from dbdeploy import AddColumn, Column, Migration

migration = Migration(
    version="001",
    name="dollar_quote_unterminated",
    operations=[AddColumn(table="app.users", column=Column(name="note", type="text", default="$$; DROP TABLE x; --"))],
)
