"""The two ways :func:`dbdeploy.sql.psql.split_script` splits a script give the same result.

When PostgreSQL's parser accepts a whole text, its statement boundaries (pglast's ``split``, in C)
are used for plain statements and only the others are lexed token by token with psql's rules
(issue 10, item 10: a 10 MB RawSQL in seconds). Every bundle in the repository, the psql parity
corpus and a set of texts built from pieces psql treats specially are split both ways and must
give the same statements, words, flags and comments.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dbdeploy.sql import psql
from dbdeploy.sql.psql import LineComment, Statement
from tests.test_psql_parity import CORPUS

REPO = Path(__file__).resolve().parent.parent


def _shape(items) -> list[tuple]:
    out = []
    for item in items:
        if isinstance(item, Statement):
            out.append(("statement", item.text, item.start, item.end, item.words, item.terminated, item.copy_data,
                        item.copy_out, item.empty))
        else:
            assert isinstance(item, LineComment)
            out.append(("comment", item.text, item.start, item.end, item.at_line_start))
    return out


def _outcome(split, text: str):
    """The split's shape, or the error it raises (message with line and position)."""
    try:
        items = split(text)
    except psql.PsqlScriptError as exc:
        return ("refused", str(exc), exc.position)
    return None if items is None else _shape(items)


def _both(text: str) -> tuple[list[tuple] | tuple | None, list[tuple] | tuple]:
    return (_outcome(psql._split_by_parser, text),
            _outcome(lambda t: psql._split_lexed(t, 0, len(t)), text))


BUNDLES = sorted(REPO.glob("tests/golden/*/*.sql")) + sorted(REPO.glob("generated/*/*.sql"))


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_bundle_splits_the_same_both_ways(path: Path) -> None:
    text = path.read_text()
    by_parser, lexed = _both(text)
    assert by_parser is not None, "the parser accepts every generated bundle"
    assert by_parser == lexed


@pytest.mark.parametrize("name, forward, rollback", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_splits_the_same_both_ways(name: str, forward: str, rollback: str) -> None:
    for text in (forward, rollback):
        by_parser, lexed = _both(text)
        if by_parser is not None:
            assert by_parser == lexed, name


# Pieces a regex- or parser-only splitter gets wrong; each is a complete statement (or comment).
PIECES = [
    "SELECT 1;",
    "INSERT INTO public.t (id, note) VALUES (1, 'plain row');",
    "INSERT INTO public.t (id, note) VALUES (2, 'a ; inside');",
    "INSERT INTO public.t (id, note) VALUES (3, 'a -- not a comment');",
    "INSERT INTO public.t (id, note) VALUES (4, 'wörd ünïcode ✓');",
    "SELECT 'x'::text AS a, '{1,2}'::int[] AS b;",
    "SELECT (ARRAY[1,2,3])[1:2];",
    "SELECT (ARRAY[1,2,3])[1: 2];",
    "SELECT '1'::text:::name;",
    "INSERT INTO public.t (id, at) VALUES (5, '2024-01-01 12:30:00');",
    "INSERT INTO public.t (id, note) VALUES (6, 'begin; copy /* -- \\ :x');",
    "SELECT $tag$ it's ; -- $tag$::text;",
    "-- a comment line between statements",
    "/* a block comment */ SELECT 2;",
    "SELECT 3 -- trailing comment inside\n;",
    ";",
    "CREATE RULE r AS ON INSERT TO public.t DO ALSO (SELECT 1; SELECT 2);",
    "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
    "CREATE FUNCTION public.g() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;",
    "DO $body$ BEGIN PERFORM 1; END $body$;",
    "COPY public.t TO STDOUT;",
    "SELECT E'it''s \\\\ a backslash';",
    "SELECT \"Quoted Ident\" FROM public.t;",
    "BEGIN;",
    "COMMIT;",
    "select   4\n\n  ;",
    "SELECT\t5\r\n;",
]


def _texts(count: int) -> list[str]:
    generator = random.Random(20261130)
    texts = []
    for _ in range(count):
        chosen = [generator.choice(PIECES) for _ in range(generator.randint(1, 8))]
        separators = [generator.choice(["\n", " ", "\n\n", "\r\n", "\t"]) for _ in chosen]
        text = "".join(piece + sep for piece, sep in zip(chosen, separators, strict=True))
        if generator.random() < 0.3:        # the last statement without its ';'
            text = text.rstrip().rstrip(";") + generator.choice(["", "  ", "\n", "  \n\n"])
        if generator.random() < 0.2:
            text += "-- a comment after the last statement\n"
        texts.append(text)
    return texts


@pytest.mark.parametrize("text", _texts(300))
def test_texts_of_special_pieces_split_the_same_both_ways(text: str) -> None:
    by_parser, lexed = _both(text)
    if by_parser is not None:
        assert by_parser == lexed


def test_a_plain_body_is_split_by_the_parser_without_lexing_its_statements() -> None:
    """The fast way is really taken: plain statements get no words until asked for them."""
    body = "".join(f"INSERT INTO public.big (id, note, at) VALUES ({i}, 'row {i}: begin; -- copy /* \\', "
                   f"'2024-01-01 12:{i % 60:02}:00');\n" for i in range(2000))
    items = psql._split_by_parser(body)
    assert items is not None and len(items) == 2000
    assert all(isinstance(s, Statement) and s.known_words is None for s in items)
    assert items[7].words == ("insert", "into", "public", "big", "id", "note", "at", "values")
    assert _shape(items) == _shape(psql._split_lexed(body, 0, len(body)))


def test_what_the_parser_refuses_is_lexed_and_reported_as_before() -> None:
    """A psql meta-command or an unterminated quote: the parser refuses, the lexer reports it."""
    assert psql._split_by_parser("SELECT 1;\n\\echo hi\n") is None
    with pytest.raises(psql.PsqlScriptError, match="meta-command"):
        psql.split_script("SELECT 1;\n\\echo hi\n")
    with pytest.raises(psql.PsqlScriptError, match="lexer stops"):
        psql.split_script("SELECT 1;\nSELECT 'open\n")
    with pytest.raises(psql.PsqlScriptError, match="psql variable"):
        psql.split_script("SELECT 1;\nSELECT * FROM t WHERE a = :value;\n")
