"""Split an SQL script into exactly the statements ``psql -v ON_ERROR_STOP=1 -f`` sends.

PostgreSQL's own lexer (:func:`pglast.parser.scan`, the server's scanner with token positions)
finds the tokens; this module applies psql's rules on top of them (``src/bin/psql/mainloop.c``
and ``src/fe_utils/psqlscan.l`` in PostgreSQL 15/16):

- whitespace and ``--`` comments before a statement are dropped; a statement starts at its first
  other token (a ``/* */`` comment starts it too) and ends with the ``;`` that closes it, which
  is sent with it; everything in between — comments, line breaks, ``\\r`` — is sent verbatim;
- a ``;`` inside parentheses, or inside the ``BEGIN … END`` of ``CREATE [OR REPLACE]
  FUNCTION|PROCEDURE … BEGIN ATOMIC``, does not end the statement;
- after ``COPY … FROM STDIN;`` psql reads the following lines of the file as COPY data, up to a
  line that is exactly ``\\.``, and sends them to the server.

What psql would treat differently from the server is refused with :class:`PsqlScriptError`
(never guessed): a backslash outside quotes (a psql meta-command), and a colon directly followed
by a name, a quote or ``{`` (psql variable interpolation — ``:name``, ``:'name'``, ``:"name"``,
``:{?name}``; which names psql defines depends on ``-v``, ``~/.psqlrc`` and the server, so every
such colon is refused; ``a[1: n]`` with a space is not interpolated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache


def _pglast():
    """pglast's parser module (PostgreSQL's lexer and parser in C), imported when first needed: reading
    a bundle lexes it, but importing this module (the executor does) does not load pglast."""
    import pglast.parser

    return pglast.parser


_WORD_KINDS = frozenset(("UNRESERVED_KEYWORD", "COL_NAME_KEYWORD", "TYPE_FUNC_NAME_KEYWORD", "RESERVED_KEYWORD"))
_COPY_END = re.compile(r"^\\\.\r?$", re.MULTILINE)  # psql: a data line that is exactly \. ends COPY data
_VARIABLE_START = re.compile(r"[A-Za-z0-9_\x80-\U0010ffff'\"{]")

FIX_META = ("remove the psql meta-command (a line or word starting with a backslash outside quotes): "
            "dbdeploy and psql must run the same statements; write it as SQL (e.g. SET instead of \\set, "
            "COPY … FROM STDIN with the data lines after it instead of \\copy)")
FIX_VARIABLE = ("psql would replace :name, :'name' or :\"name\" with a psql variable; write the value itself, "
                "or put a space after the colon (e.g. a[1: n]) where it is SQL")
FIX_COPY = ("end the COPY data with a line that is exactly \\. and put nothing after the ';' of "
            "COPY … FROM STDIN on its line")


class PsqlScriptError(ValueError):
    """The script cannot be run the same way by psql and by dbdeploy (or cannot be lexed).

    ``position`` is the character offset in the script, ``line`` its 1-based line number;
    ``fix`` says what to change.
    """

    def __init__(self, reason: str, text: str, position: int, fix: str) -> None:
        self.reason = reason
        self.position = position
        self.line = text.count("\n", 0, position) + 1
        self.fix = fix
        super().__init__(f"{reason} (line {self.line})")


@dataclass(frozen=True)
class Statement:
    """One statement exactly as psql sends it, and where it is in the script.

    ``text`` runs from the statement's first token through its closing ``;`` (``terminated``
    is False when the script ended first: psql sends such a rest at end of file). ``words``
    are its unquoted words (keywords and identifiers) in lower case. For ``COPY … FROM STDIN``,
    ``copy_data`` holds the data lines psql sends after it (without the ``\\.`` line) and
    ``end`` is after the ``\\.`` line; ``copy_out`` is True for ``COPY … TO STDOUT``.

    ``known_words`` are the words when the splitter already had them; otherwise :attr:`words`
    lexes ``text`` the first time it is asked (a statement starts in the lexer's initial state, so
    its own tokens are the ones it had in the script).
    """

    text: str
    start: int
    end: int
    known_words: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    terminated: bool = True
    copy_data: str | None = None
    copy_out: bool = False
    empty: bool = False   # only comments and ';': the server runs it as an empty query
    # What a bundle's statement index recorded at generate (dbdeploy.bundle.statement_index): the
    # first HEAD_WORDS words, whether there are more, and whether the words hold both "concurrently"
    # and "index". None: not recorded (the words are lexed when asked).
    head: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    more_words: bool = field(default=False, compare=False, repr=False)
    concurrent_index: bool | None = field(default=None, compare=False, repr=False)

    @cached_property
    def words(self) -> tuple[str, ...]:
        """The statement's unquoted words (keywords and identifiers) in lower case."""
        if self.known_words is not None:
            return self.known_words
        if self.head is not None and not self.more_words:
            return self.head
        try:
            tokens = scan(self.text)
        except _pglast().ParseError:
            return ()
        return tuple(self.text[t.start:t.end + 1].lower() for t in tokens if _is_word(self.text, t))


    @classmethod
    def recorded(cls, text: str, start: int, end: int, *, terminated: bool, copy_data: str | None, copy_out: bool,
                 empty: bool, head: tuple[str, ...], more_words: bool, concurrent_index: bool) -> Statement:
        """A statement as a bundle's statement index records it (the same as constructing it; without
        the dataclass's per-field checks, which a 10 MB RawSQL's 100,000 statements make slow)."""
        made = object.__new__(cls)
        made.__dict__.update(text=text, start=start, end=end, known_words=None, terminated=terminated,
                             copy_data=copy_data, copy_out=copy_out, empty=empty, head=head,
                             more_words=more_words, concurrent_index=concurrent_index)
        return made

    def head_facts(self) -> tuple[tuple[str, ...], bool, bool]:
        """(first HEAD_WORDS words, whether there are more, whether the words hold ``concurrently`` and
        ``index``): what a statement index records. Lexes a prefix of the text when that tells (a
        RawSQL's plain statements are many and long), else the whole statement."""
        if self.known_words is None and (plain := _PLAIN_HEAD.match(self.text)):
            return (plain[1].lower(), plain[2].lower()), True, self.builds_index_concurrently
        if self.known_words is None and len(self.text) > _PREFIX:
            try:
                tokens = scan(self.text[:_PREFIX])
            except _pglast().ParseError:
                tokens = None
            if tokens:
                # tokens ending well before the cut are the whole text's tokens (the lexer reads left to right)
                words = [self.text[t.start:t.end + 1].lower() for t in tokens
                         if t.end + 1 < _PREFIX - 8 and _is_word(self.text, t)]
                if len(words) > HEAD_WORDS:
                    return tuple(words[:HEAD_WORDS]), True, self.builds_index_concurrently
        words = self.words
        return words[:HEAD_WORDS], len(words) > HEAD_WORDS, "concurrently" in words and "index" in words

    def first_words(self, n: int) -> tuple[str, ...]:
        """``words[:n]``; from the recorded head (no lexer) when ``n`` is at most HEAD_WORDS."""
        if self.head is not None and n <= HEAD_WORDS:
            return self.head[:n]
        return self.words[:n]

    @property
    def builds_index_concurrently(self) -> bool:
        """True if the words hold both ``concurrently`` and ``index`` (CREATE/REINDEX … CONCURRENTLY),
        from the record when there is one (no lexer); a cheap substring test spares the lexer otherwise."""
        if self.concurrent_index is not None:
            return self.concurrent_index
        lowered = self.text.lower()
        if "concurrently" not in lowered or "index" not in lowered:
            return False
        words = self.words
        return "concurrently" in words and "index" in words


_PREFIX = 96      # characters lexed for head_facts
# Three ASCII words, each ended by whitespace (the third also by ( . , ;): the lexer's first three
# tokens are these identifiers or keywords (scan.l's {identifier}; a quote after a word would make a
# string such as E'…' or U&'…', so none may follow). Most statements of a large RawSQL start so.
_WORD = r"[A-Za-z_][A-Za-z0-9_$]*"
_PLAIN_HEAD = re.compile(rf"({_WORD})[ \t\n\r\f]+({_WORD})[ \t\n\r\f]+{_WORD}[ \t\n\r\f(.,;]")
HEAD_WORDS = 2   # the words a statement index records (what the executor reads: BEGIN/COMMIT, DO, SET lock_timeout)


def _is_word(text: str, token) -> bool:
    """An unquoted identifier or a keyword (what :attr:`Statement.words` holds)."""
    return token.name == "IDENT" and not text.startswith('"', token.start) or token.kind in _WORD_KINDS


@dataclass(frozen=True)
class LineComment:
    """A ``--`` comment between statements (psql drops it); ``at_line_start`` if it begins a line."""

    text: str
    start: int
    end: int
    at_line_start: bool


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def scan(text: str) -> list:
    """PostgreSQL's lexer (:func:`pglast.parser.scan`) in time linear in ``text``; token positions
    are character offsets into ``text``.

    pglast maps each token's byte offset to a character offset with a linear search over every
    non-ASCII character before it, so a text with many such characters (a seed of names, a RawSQL
    with accents in its comments) takes quadratic time. Every non-ASCII character is therefore
    given to the lexer as ``_`` — one character for one, so the offsets are the same. The lexer
    puts both in the same class (a non-ASCII character is part of an identifier or dollar-quote tag
    outside quotes, and any character is content inside a string, quoted identifier or comment),
    so the token boundaries are the same; only a word can read as a different keyword (e.g.
    ``current·user``), and callers take the words' text from ``text`` itself. Raises pglast's
    ``ParseError`` (positions as in ``text``) for what the lexer refuses.
    """
    return _pglast().scan(ascii_for_lexer(text))


def ascii_for_lexer(text: str) -> str:
    """``text`` with every non-ASCII character as ``_``, one for one: the same tokens and statement
    boundaries for PostgreSQL's lexer and parser (see :func:`scan`), and positions pglast maps in
    linear time."""
    return text if text.isascii() else _NON_ASCII.sub("_", text)


_WINDOW = 1 << 16   # characters lexed at a time; COPY data after a statement is never lexed


def _tokens(text: str, offset: int, stop: int):
    """Tokens of ``text[offset:stop]`` with positions relative to ``offset``, plus the position and
    message of a lexer error after them (an unterminated quote or comment, or the window's cut), if
    any. On an error the tokens are those of the text before the failing token: the lexer works left
    to right, so they are the same tokens as in the whole text."""
    rest = text[offset:stop]
    try:
        return scan(rest), None
    except _pglast().ParseError as exc:
        message, *more = exc.args
        location = more[0] if more and isinstance(more[0], int) else 0
        tokens = []
        if location > 0:
            try:
                tokens = scan(rest[:location])
            except _pglast().ParseError:
                tokens = []
        return tokens, (offset + location, message)


def split_script(text: str) -> list[Statement | LineComment]:
    """The statements psql sends for ``text`` and the ``--`` comments between them, in order.

    Raises :class:`PsqlScriptError` for an unterminated quote, dollar quote or comment, a psql
    meta-command or variable, or COPY data without its ``\\.`` line.

    Two ways give the same result (tests/test_psql_split_fast.py compares them on every bundle and
    corpus): when PostgreSQL's parser accepts the whole text, its statement boundaries (pglast's
    ``split``, in C) are taken for every statement that holds nothing psql treats specially outside
    its constants (no comment, backslash, colon other than ``::``, ``;`` alone, ``begin`` or
    ``copy``), and only the other statements are lexed token by token with psql's rules
    (:func:`_split_lexed`); otherwise the whole text is lexed. A 10 MB RawSQL of plain statements is then split in about
    a second instead of building a Python object for each of its million tokens.

    The result for a text is computed once and kept (a few texts at a time): generation, lint and
    the bundle check split the same RawSQL body many times.
    """
    return list(_split_script_cached(text))


@lru_cache(maxsize=8)
def _split_script_cached(text: str) -> tuple[Statement | LineComment, ...]:
    by_parser = _split_by_parser(text)
    return tuple(by_parser if by_parser is not None else _split_lexed(text, 0, len(text)))


_BLANK = re.compile(r"[ \t\n\r\f]*")            # the whitespace of PostgreSQL's lexer (scan.l)
_TO_SEMICOLON = re.compile(r"[ \t\n\r\f]*;")


def _split_by_parser(text: str) -> list[Statement | LineComment] | None:
    """:func:`split_script` by the parser's statement boundaries, or None if the parser refuses the
    text (then only the lexer can say what psql does, or why it cannot be run the same way).

    Whether psql could treat a statement specially is decided on PostgreSQL's normalized text of
    the statement (pglast's ``normalize``: every constant — string, dollar-quoted body, number —
    replaced by ``$n``), so a colon, ``--`` or ``begin`` inside a literal does not count.
    """
    mapped = ascii_for_lexer(text)
    try:
        pieces = _pglast().split(mapped, with_parser=True, only_slices=True)
    except _pglast().ParseError:
        return None
    items: list[Statement | LineComment] = []
    done = 0                                      # the text before this is split
    for piece in pieces:
        semicolon = _TO_SEMICOLON.match(text, piece.stop)
        if semicolon:
            end = semicolon.end()
        else:   # the last statement, without its ';': psql sends it at the end of the file
            end = len(text) if _BLANK.match(text, piece.stop).end() == len(text) else piece.stop
        if semicolon and _BLANK.match(text, done).end() >= piece.start and _plain(mapped[piece]):
            items.append(Statement(text[piece.start:end], piece.start, end))
        else:
            lexed = _split_lexed(text, done, end)
            if not _ends_at(lexed, end, len(text)):
                # psql reads on past the parser's statement here (the BEGIN ATOMIC heuristic, COPY
                # data that parses as SQL): lex the rest of the text as one.
                return items + _split_lexed(text, done, len(text))
            items += lexed
        done = end
    if done < len(text) and _BLANK.match(text, done).end() < len(text):
        items += _split_lexed(text, done, len(text))       # comments after the last statement
    return items


def _plain(statement: str) -> bool:
    """True if one statement (without its ``;``) holds nothing psql treats specially outside its
    constants: no comment, backslash (meta-command), colon other than ``::`` (variable), ``;``
    (an empty statement, or one inside parentheses or BEGIN ATOMIC), ``begin`` (the BEGIN ATOMIC
    heuristic of CREATE FUNCTION/PROCEDURE) or ``copy`` (COPY data), case-insensitive."""
    if not _special(statement):
        return True                  # not even inside a constant: no need to normalize
    try:
        return not _special(_pglast().normalize(statement))
    except _pglast().ParseError:
        return False


def _special(text: str) -> bool:
    """True if ``text`` holds anything :func:`_plain` names (substring tests: C speed)."""
    if ";" in text or "--" in text or "/*" in text or "\\" in text:
        return True
    # "::" is a cast; any other colon (also the third of ":::") may start a psql variable
    if ":" in text and ":" in text.replace("::", ""):
        return True
    lowered = text.lower()
    return "begin" in lowered or "copy" in lowered


def _ends_at(items: list[Statement | LineComment], end: int, length: int) -> bool:
    """True if the lexed ``items`` of a piece end where the parser's statement ends: the last is a
    statement ending at ``end`` and none reads COPY data."""
    statements = [item for item in items if isinstance(item, Statement)]
    return (bool(statements) and statements[-1].end == end
            and (statements[-1].terminated or end == length)
            and all(s.copy_data is None for s in statements)
            and all(s.terminated for s in statements[:-1]))


def _split_lexed(text: str, begin: int, stop: int) -> list[Statement | LineComment]:
    """psql's split of ``text[begin:stop]`` (``begin`` at a statement boundary), token by token.

    The text is lexed in windows that end at a line break; only what comes before the last ``;``
    of a window is kept (the lexer's state there is the initial one), the rest is lexed again with
    the next window. COPY data is skipped, never lexed. Positions are offsets into ``text``.
    """
    items: list[Statement | LineComment] = []
    offset = begin
    window = _WINDOW
    while offset < stop:
        cut_at = stop
        if cut_at - offset > window:
            cut = text.find("\n", offset + window, stop)
            cut_at = cut + 1 if cut >= 0 else stop
        final = cut_at >= stop
        tokens, error = _tokens(text, offset, cut_at)
        found, resume = _split_tokens(text, offset, tokens, error, final, stop)
        if resume is None:          # no complete statement in this window: lex a larger one
            window *= 2
            continue
        items.extend(found)
        offset, window = resume, _WINDOW
    return items


def _split_tokens(text, offset, tokens, error, final, stop) -> tuple[list, int | None]:
    """Statements and comments of one window, and where to lex next (None: nothing complete);
    ``stop`` is where the lexed range ends (an unterminated statement runs up to it)."""
    items: list[Statement | LineComment] = []
    kept, resume = 0, None
    start = None
    words: list[str] = []
    paren = begin = 0
    heads: list[str] = []
    code = False
    for index, token in enumerate(tokens):
        first, last = offset + token.start, offset + token.end + 1
        name = token.name
        if name == "SQL_COMMENT":
            if start is None:
                at_line_start = first == 0 or text[first - 1] == "\n"
                items.append(LineComment(text[first:last], first, last, at_line_start))
            continue
        if start is None:
            start, words, paren, begin, heads, code = first, [], 0, 0, [], False
        if name == "C_COMMENT":
            continue
        code = code or name != "ASCII_59"
        if name == "ASCII_92":
            raise PsqlScriptError("a backslash outside quotes, which psql reads as a meta-command",
                                  text, first, FIX_META)
        if name == "ASCII_58" and last < len(text) and _VARIABLE_START.match(text, last):
            raise PsqlScriptError(f"{text[first:last + 20].split()[0]!r} is a psql variable reference",
                                  text, first, FIX_VARIABLE)
        if name == "IDENT" and not text.startswith('"', first) or token.kind in _WORD_KINDS:
            word = text[first:last].lower()
            # psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN ATOMIC … END
            if len(words) < 4:
                heads.append(word[0] if word in ("create", "function", "procedure", "or", "replace") else "")
            words.append(word)
            if heads[:1] == ["c"] and (heads[1:2] in (["f"], ["p"]) or (
                    heads[1:3] == ["o", "r"] and heads[3:4] in (["f"], ["p"]))) and paren == 0:
                if word == "begin" or word == "case" and begin >= 1:
                    begin += 1
                elif word == "end" and begin > 0:
                    begin -= 1
            continue
        if name == "ASCII_40":
            paren += 1
        elif name == "ASCII_41":
            paren = max(paren - 1, 0)
        elif name == "ASCII_59" and paren == 0 and begin == 0:
            statement = Statement(text[start:last], start, last, tuple(words), empty=not code)
            start = None
            if statement.words[:1] == ("copy",):
                direction = _copy_direction(statement.text)
                if direction == "in":
                    statement, resume = _with_copy_data(text, statement, tokens[index + 1:], offset)
                    items.append(statement)
                    return items, resume
                if direction == "out":
                    statement = replace(statement, copy_out=True)
            items.append(statement)
            kept, resume = len(items), last
    if not final:
        return items[:kept], resume
    if error is not None:
        raise PsqlScriptError(f"PostgreSQL's lexer stops here: {error[1]}", text, error[0],
                              "close the quote, dollar quote or comment")
    if start is not None:
        items.append(Statement(text[start:stop].rstrip("\n"), start, stop, tuple(words), terminated=False,
                               empty=not code))
    return items, stop


def _copy_direction(statement: str) -> str | None:
    """``"in"`` for COPY … FROM STDIN, ``"out"`` for COPY … TO STDOUT, else None (the parser decides)."""
    from pglast import ast, parse_sql

    try:
        parsed = parse_sql(statement)
    except _pglast().ParseError:
        return None   # the server will refuse it, under psql too
    if len(parsed) != 1 or not isinstance(parsed[0].stmt, ast.CopyStmt):
        return None
    node = parsed[0].stmt
    if node.filename is not None or node.is_program:
        return None
    return "in" if node.is_from else "out"


def _with_copy_data(text: str, statement: Statement, after, offset: int) -> tuple[Statement, int]:
    line_end = text.find("\n", statement.end)
    rest_of_line = text[statement.end: line_end if line_end >= 0 else len(text)]
    following = [t for t in after if offset + t.start < statement.end + len(rest_of_line)]
    if any(t.name != "SQL_COMMENT" for t in following):
        raise PsqlScriptError("SQL follows COPY … FROM STDIN on the same line; psql would run it after the data",
                              text, statement.end, FIX_COPY)
    if line_end < 0:
        raise PsqlScriptError("COPY … FROM STDIN has no data lines and no \\. line after it", text,
                              statement.start, FIX_COPY)
    data_start = line_end + 1
    found = _COPY_END.search(text, data_start)
    if found is None:
        raise PsqlScriptError("the data of COPY … FROM STDIN does not end with a line that is exactly \\.",
                              text, statement.start, FIX_COPY)
    resume = found.end() + 1 if found.end() < len(text) else found.end()
    return replace(statement, end=resume, copy_data=text[data_start:found.start()]), resume


def statements(text: str) -> list[Statement]:
    """Only the statements of :func:`split_script` (comments between statements dropped)."""
    return [item for item in split_script(text) if isinstance(item, Statement)]


def sql_only(text: str) -> str:
    """``text`` with every COPY data block (and its ``\\.`` line) replaced by as many spaces, line
    breaks kept: what is left is only SQL, at the same positions, for PostgreSQL's parser."""
    pieces = []
    done = 0
    for item in statements(text):
        if item.copy_data is not None:
            pieces.append(text[done:item.start + len(item.text)])
            blank = text[item.start + len(item.text):item.end]
            pieces.append(re.sub(r"[^\n]", " ", blank))
            done = item.end
    pieces.append(text[done:])
    return "".join(pieces)


def indent(text: str, by: str = "    ") -> str:
    """``text`` with ``by`` put before each line that starts outside every token, for readability.

    Indentation is whitespace between tokens only: a line that begins inside a string, a dollar-quoted
    string (a function or DO body), a quoted identifier or a ``/* */`` comment is left exactly as it
    is, so no literal changes by a single byte (PostgreSQL's lexer, :func:`pglast.parser.scan`, finds
    the tokens; PL/pgSQL reads the body of a DO block with the same lexer, so a literal nested in a
    body is found too). Only ``\\n`` ends a line (never ``\\r``, ``\\u2028`` or other characters
    ``str.splitlines`` would split at). Lines that are empty or only whitespace are not indented.
    Text the lexer cannot read (an unterminated quote or comment) is returned unchanged: nothing is
    indented where it cannot be done safely.
    """
    if "\n" not in text:
        return by + text if text.strip() else text
    spans = _plain_spans(text)
    if spans is None:
        try:
            tokens = scan(text)
        except _pglast().ParseError:
            return text
        # tokens that span a line break: a line starting inside one of them keeps its bytes
        spans = [(t.start, t.end) for t in tokens if text.find("\n", t.start, t.end + 1) >= 0]
    pieces = []
    position = k = 0
    for line in text.split("\n"):
        while k < len(spans) and spans[k][1] < position:
            k += 1
        inside = k < len(spans) and spans[k][0] < position <= spans[k][1]
        pieces.append(line if inside or not line.strip() else by + line)
        position += len(line) + 1
    return "\n".join(pieces)


# Text whose multi-line tokens can only be plain 'strings', "identifiers" and -- comments (which
# never span a line): no dollar quote or parameter, no /* comment, no backslash (E'' escapes), no ""
# (refused when empty), no string continued on the next line ('a'<newline>'b' is one token).
_NOT_PLAIN = re.compile(r"[$\\]|/\*|\"\"|'[ \t\r\f]*\n[ \t\n\r\f]*'")
_PLAIN_TOKEN = re.compile(r"'[^']*(?:''[^']*)*'|\"[^\"]*\"|--[^\n]*|[^'\"-]+|-")


def _plain_spans(text: str) -> list[tuple[int, int]] | None:
    """The (first, last) character positions of the tokens of ``text`` that span a line break, as
    :func:`scan` finds them, when ``text`` is simple enough to find them without PostgreSQL's lexer
    (see ``_NOT_PLAIN``: dbdeploy's own bookkeeping and trust blocks, built at run time by the
    executor, which then needs no pglast); None when only the lexer can tell."""
    if _NOT_PLAIN.search(text):
        return None
    spans = []
    position = 0
    for match in _PLAIN_TOKEN.finditer(text):
        if match.start() != position:       # an unterminated quote: let the lexer say so
            return None
        position = match.end()
        if match.group()[0] in "'\"" and "\n" in match.group():
            spans.append((match.start(), match.end() - 1))
    return spans if position == len(text) else None
