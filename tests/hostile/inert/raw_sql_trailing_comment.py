"""Inert: RawSQL whose last line is a `--` comment.

The generator terminates each RawSQL step with ';'. Appended to the comment, that ';' would be
comment text: the step's COMMIT would then be read as part of the statement (psql and the
executor's splitter both), e.g. `SELECT 1 -- note;` + `COMMIT;` becomes `SELECT 1 COMMIT`, an alias.
"""

from dbdeploy import Migration, RawSQL

migration = Migration(
    version="001",
    name="raw_sql_trailing_comment",
    operations=[
        RawSQL(forward="CREATE TABLE public.raw_notes (id bigint) -- a comment; DROP TABLE pwned",
               rollback="DROP TABLE public.raw_notes -- gone",
               verify="SELECT pg_catalog.to_regclass('public.raw_notes') IS NOT NULL -- present"),
    ],
)
