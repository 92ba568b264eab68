"""The statement index recorded at generate gives the executor exactly the split the lexer gives.

For every golden and example bundle file, the psql-parity corpus (each RawSQL body, and the bundle
generated from all of them) and texts built from the pieces psql treats specially, the statements
sliced by the index are those :func:`dbdeploy.sql.psql.split_script` yields — text, positions, COPY
data, flags, the words the executor reads — with the same comments between them, and
:func:`parse_steps` reads the same steps (blocks, summaries, batch statements) either way. A manifest
without the index is split with the lexer; an index that does not fit its file is a BundleFormatError.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from dbdeploy.bundle import statement_index
from dbdeploy.bundle.markers import parse_steps, statement_index_of
from dbdeploy.errors import BundleFormatError
from dbdeploy.executor.bundles import load_bundles, parse_script
from dbdeploy.sql.psql import HEAD_WORDS, LineComment, Statement, split_script
from tests.bundles import write_bundles
from tests.test_psql_parity import CORPUS, _corpus_migrations
from tests.test_psql_split_fast import PIECES

REPO = Path(__file__).resolve().parent.parent
BUNDLES = sorted(REPO.glob("tests/golden/*/*.sql")) + sorted(REPO.glob("generated/*/*.sql"))


def _lexed_shape(items) -> list[tuple]:
    out = []
    for item in items:
        if isinstance(item, Statement):
            words = item.words
            out.append(("statement", item.text, item.start, item.end, item.terminated, item.copy_data,
                        item.copy_out, item.empty, words[:HEAD_WORDS], len(words) > HEAD_WORDS,
                        "concurrently" in words and "index" in words))
        else:
            assert isinstance(item, LineComment)
            out.append(("comment", item.text, item.start, item.end, item.at_line_start))
    return out


def _indexed_shape(items) -> list[tuple]:
    out = []
    for item in items:
        if isinstance(item, Statement):
            assert item.head is not None, "every indexed statement has its recorded words"
            out.append(("statement", item.text, item.start, item.end, item.terminated, item.copy_data,
                        item.copy_out, item.empty, item.first_words(HEAD_WORDS), item.more_words,
                        item.builds_index_concurrently))
        else:
            out.append(("comment", item.text, item.start, item.end, item.at_line_start))
    return out


def _assert_index_gives_the_split(text: str) -> dict:
    index = statement_index_of(text)
    assert index is not None, "the index reads back exactly"
    items, _ = statement_index.decode(text, index)
    assert _indexed_shape(items) == _lexed_shape(split_script(text))
    return index


def _step_shape(parsed) -> tuple:
    preamble, steps, postamble = parsed

    def statements(found):
        return [(s.text, s.start, s.end, s.copy_data, s.copy_out, s.first_words(HEAD_WORDS),
                 s.builds_index_concurrently) for s in found]

    return (statements(preamble), statements(postamble),
            [(s.number, s.kind, s.transactional, s.lock, s.target, s.block, s.summary, statements(s.statements),
              s.batch, s.batch_rows) for s in steps])


def _assert_same_steps(text: str) -> None:
    index = _assert_index_gives_the_split(text)
    assert _step_shape(parse_steps(text, index)) == _step_shape(parse_steps(text))


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_bundle_file_reads_the_same_by_its_index(path: Path) -> None:
    text = path.read_text()
    _assert_same_steps(text)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    which = "forward" if manifest["files"]["forward"]["name"] == path.name else "rollback"
    assert manifest["statements"][which] == statement_index_of(text), "the committed index is current"


@pytest.mark.parametrize("name, forward, rollback", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_texts_split_the_same_by_their_index(name: str, forward: str, rollback: str) -> None:
    for text in (forward, rollback):
        _assert_index_gives_the_split(text)


def test_corpus_bundle_reads_the_same_by_its_index(tmp_path: Path) -> None:
    bundles = write_bundles(_corpus_migrations(), tmp_path)
    for files in bundles.values():
        for path in (files.forward, files.rollback):
            _assert_same_steps(path.read_text())


def test_texts_of_special_pieces_split_the_same_by_their_index() -> None:
    rng = random.Random(11)
    for _ in range(300):
        text = "\n".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
        try:
            split_script(text)
        except ValueError:
            continue
        _assert_index_gives_the_split(text)


def test_unterminated_last_statement_and_copy_data_round_trip() -> None:
    text = ("-- head\nCOPY t (a) FROM STDIN;\n1\n2\n\\.\n  ;\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
            "/* c */ SELECT 1\n\n")
    index = _assert_index_gives_the_split(text)
    assert "x" in index["index"] and "u" in index["index"] and "c" in index["index"] and "e" in index["index"]


def _project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "generated", tmp_path / "generated")
    return tmp_path / "generated"


def test_a_manifest_without_the_index_is_split_with_the_lexer(tmp_path: Path) -> None:
    generated = _project(tmp_path)
    with_index = {b.version: b.forward for b in load_bundles(generated)}
    for manifest in generated.glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        del data["statements"]
        manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    for bundle in load_bundles(generated):
        assert bundle.info.statements == {}
        assert bundle.forward == with_index[bundle.version]
        assert [list(s.statements) for s in bundle.rollback.steps]


@pytest.mark.parametrize("edit", [
    lambda entry: entry.update(index=entry["index"] + " 5.999999999"),
    lambda entry: entry.update(index=entry["index"].replace(" ", " ?", 1)),
    lambda entry: entry.update(words=""),
])
def test_an_index_that_does_not_fit_its_file_is_a_bundle_format_error(edit, tmp_path: Path) -> None:
    generated = _project(tmp_path)
    manifest = next(generated.glob("V001*/manifest.json"))
    data = json.loads(manifest.read_text())
    edit(data["statements"]["forward"])
    manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    bundle = next(b for b in load_bundles(generated) if b.version == "001")
    with pytest.raises(BundleFormatError, match="statement index"):
        bundle.forward  # noqa: B018


def test_an_edited_file_is_not_read_by_the_index(tmp_path: Path) -> None:
    """The index describes exactly the bytes of the manifest's sha256: an edited file is split with
    the lexer (and reported by the bundle check), never sliced by offsets of other bytes."""
    generated = _project(tmp_path)
    bundle = next(b for b in load_bundles(generated) if b.version == "001")
    path = bundle.path("forward")
    path.write_text(path.read_text().replace("-- dbdeploy:preamble", "\n\n-- dbdeploy:preamble", 1))
    bundle = next(b for b in load_bundles(generated) if b.version == "001")
    assert bundle.problems()
    assert bundle.forward.steps == parse_script(path.read_text()).steps



def test_long_statements_record_the_words_the_lexer_finds() -> None:
    """Words of a long statement are taken from a lexed prefix (head_facts): whatever stands at the cut
    (a string, a quoted name, a comment, a word, non-ASCII text) the recorded words are the lexer's."""
    fillers = ["'{}'", '"{}"', "/* {} */", "{}", "$q${}$q$", "E'{}\\''", "'ü{}✓'"]
    statements = []
    for k in range(40, 120, 3):
        for filler in fillers:
            value = filler.format("x" * k)
            statements += [f"INSERT INTO public.t (a) VALUES ({value});",
                           f"SELECT {value} AS a, 1 AS b FROM public.t;",
                           f"/* {'c' * k} */ CREATE INDEX CONCURRENTLY i ON public.t (a);",
                           f"CREATE UNIQUE INDEX CONCURRENTLY {'n' * min(k, 60)} ON public.t ((a || {value}));",
                           f"select {'a' * k}, {value} from t;", f"{'-' * 2} {'d' * k}\nSELECT {value};"]
    _assert_index_gives_the_split("\n".join(statements) + "\n")
    _assert_index_gives_the_split("\n".join(statements[:7]))
