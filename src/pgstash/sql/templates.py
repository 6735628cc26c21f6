"""SQL template text: where its bind parameters and `{slot}` splice points are, and what may fill
an identifier slot.

`pieces` reads a statement the way PostgreSQL's lexer does, as far as splicing needs: text inside
string literals (`'...'`, `E'...'`, `$tag$...$tag$`), quoted identifiers (`"..."`) and comments
(`--`, nested `/* */`) is kept verbatim, so a `$1`, `:x` or `{y}` in there is never a parameter or
a slot. Outside them, `$n` is a bind parameter and `{name}` a splice point; any other `{` is an
error (PostgreSQL itself never uses braces outside literals).

Identifier slots take names that match `^[a-z_][a-z0-9_]{0,62}$` (not `pg_...`), double-quoted,
or non-negative integers written as digits (a vector column's dimension, which DDL cannot take
as a parameter). Values never come here; they are bound parameters.
"""

from __future__ import annotations

import functools
import re
import string

import attrs

__all__ = [
    "IDENTIFIER",
    "Constant",
    "Parameter",
    "Slot",
    "SlotValue",
    "bound_inside_literals",
    "named",
    "pieces",
    "quote_identifier",
    "render",
    "slot_text",
    "validate_identifier",
]

# Not pg_...: PostgreSQL searches pg_catalog before every schema, so an unqualified "pg_class"
# names the system catalog even when a table of that name exists elsewhere.
IDENTIFIER = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")


@attrs.frozen(slots=True)
class Parameter:
    """A bind parameter `$number`."""

    number: int


@attrs.frozen(slots=True)
class Slot:
    """A `{name}` splice point."""

    name: str


Piece = str | Parameter | Slot

# The non-ASCII characters of the Basic Multilingual Plane (identifier characters, as in
# PostgreSQL's lexer). Not the range `\x80-\uffff` inside a class: re.compile fills a map of
# 65536 entries in Python for each such class, ~3 ms apiece, paid by every import of pgstash.
_BMP = r"[^\x00-\x7f\U00010000-\U0010ffff]"
_START = rf"(?:[A-Za-z_]|{_BMP})"  # what starts a word or a dollar-quote tag


_ASCII_START = string.ascii_letters + "_"


def _others(special: str) -> str:
    """The class of the characters that are not in `special`, not A-Za-z_ and not `_BMP`: the
    other ASCII characters, listed, and those beyond the BMP."""
    listed = (c for c in map(chr, range(128)) if c not in special and c not in _ASCII_START)
    return "[" + "".join(map(re.escape, listed)) + r"\U00010000-\U0010ffff]"


_SPECIAL = "-/eE'\"${}"  # what may open a comment, a literal, a parameter or a slot
_OTHER = _others(_SPECIAL)


# One token each: comment, quoted text, parameter, slot, a word (identifiers may hold `$`), or
# one other character. Literal bodies are scanned by `_end_of` (dollar tags and nesting).
_TOKEN = re.compile(
    r"(?P<line_comment>--[^\n]*)"
    r"|(?P<block_comment>/\*)"
    r"|(?P<escape_string>(?<![\w$])[eE]')"
    r"|(?P<string>')"
    r"|(?P<quoted>\")"
    r"|(?P<parameter>\$(?P<number>\d+))"
    rf"|(?P<dollar>\$(?:{_START}\w*(?:{_BMP}\w*)*)?\$)"
    r"|(?P<slot>\{(?P<name>[a-z_][a-z0-9_]*)\})"
    r"|(?P<brace>[{}])"
    rf"|(?P<word>{_START}[\w$]*(?:{_BMP}[\w$]*)*)"
    rf"|(?P<other>{_OTHER}+|.)",
    re.DOTALL,
)
_LITERALS = ("block_comment", "escape_string", "string", "quoted", "dollar")
# A run of whole `_TOKEN` tokens that are plain text: words (not an `E'` opening), runs of other
# characters holding no `;`, and a `-` or `/` that opens no comment. Skipping these a run at a time
# rather than a word at a time makes the catalogue, which reads every query at import, ~3x cheaper;
# anywhere this does not match, `_TOKEN` reads one token as before.
_PLAIN = re.compile(
    rf"(?:(?![eE]'){_START}[\w$]*(?:{_BMP}[\w$]*)*"
    rf"|{_others(_SPECIAL + ';')}+(?!{_OTHER})"
    r"|-(?!-)|/(?!\*))+"
)
_ESCAPE_BODY = re.compile(r"(?:[^'\\]|\\.|'')*'", re.DOTALL)
_STRING_BODY = re.compile(r"(?:[^']|'')*'", re.DOTALL)
_QUOTED_BODY = re.compile(r'(?:[^"]|"")*"', re.DOTALL)


@functools.lru_cache(maxsize=1024)
def pieces(sql: str) -> tuple[Piece, ...]:
    """`sql` as verbatim text, `Parameter`s and `Slot`s (adjacent text joined). An unterminated
    literal, quoted identifier or comment, or a brace that is not a `{slot}`, raises `ValueError`."""
    found: list[Piece] = []
    text: list[str] = []
    position = 0
    while position < len(sql):
        plain = _PLAIN.match(sql, position)
        if plain is not None:
            position = plain.end()
            text.append(plain.group())
            continue
        match = _TOKEN.match(sql, position)
        assert match is not None  # `.` matches any character
        kind = match.lastgroup or "other"
        end = match.end()
        if kind == "parameter" or kind == "slot":
            found.append("".join(text))
            text = []
            found.append(Parameter(int(match["number"])) if kind == "parameter" else Slot(match["name"]))
        elif kind == "brace":
            raise ValueError(
                f"a brace that is not a {{slot}} at offset {position}: {sql[position : position + 30]!r}"
            )
        else:
            if kind in _LITERALS:
                end = _end_of(kind, sql, match)
            text.append(sql[position:end])
        position = end
    found.append("".join(text))
    return tuple(piece for piece in found if piece != "")


# What aiosql takes for a parameter (its VAR_REF): a colon after anything but a colon, then a word.
_COLON_WORD = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def bound_inside_literals(sql: str) -> list[str]:
    """The `:name`s aiosql would bind although they sit inside an `E'...'` or `$$...$$` string or
    a comment after code on its line (aiosql skips only `'...'`, `"..."`, `/* */` and whole-line
    comments): binding them there changes the literal. `sql` is the text as written."""
    found: list[str] = []
    position = 0
    while position < len(sql):
        plain = _PLAIN.match(sql, position)
        if plain is not None:
            position = plain.end()
            continue
        match = _TOKEN.match(sql, position)
        assert match is not None
        kind = match.lastgroup or "other"
        end = _end_of(kind, sql, match) if kind in _LITERALS else match.end()
        inside = sql[position:end]
        trailing = kind == "line_comment" and sql[sql.rfind("\n", 0, position) + 1 : position].strip()
        if kind in ("escape_string", "dollar") or trailing:
            found.extend(_COLON_WORD.findall(inside))
        position = end
    return found


def named(sql: str, name: str) -> str:
    """`sql` with `/* pgstash:name */` after the first token of each of its statements, so that
    pg_stat_activity, pg_stat_statements and the server log map a statement back to its name.
    After the first token, not before it: PostgreSQL 18's pg_stat_statements keeps a statement's
    text from its first token on, dropping a comment in front of it (and pg_stat_activity cuts a
    long statement's end). Text inside literals and comments is left as it is; from an unterminated
    one on, the rest is kept verbatim (the server reports it)."""
    comment = "/* pgstash:" + name.replace("/*", "/ *").replace("*/", "* /") + " */"
    out: list[str] = []
    starting, position = True, 0  # at the start of a statement (before its first word)
    while position < len(sql):
        plain = None if starting else _PLAIN.match(sql, position)  # starting: find the first token
        if plain is not None:
            position = plain.end()
            out.append(plain.group())
            continue
        match = _TOKEN.match(sql, position)
        assert match is not None
        kind = match.lastgroup or "other"
        try:
            end = _end_of(kind, sql, match) if kind in _LITERALS else match.end()
        except ValueError:
            end = len(sql)
        token = sql[position:end]
        if starting and kind not in ("line_comment", "block_comment") and token.strip(" \t\r\n;"):
            token = f"{token} {comment}"
            starting = False
        elif kind == "other" and ";" in token:
            starting = True
        out.append(token)
        position = end
    return "".join(out)


def _end_of(kind: str, sql: str, match: re.Match[str]) -> int:
    """Where the literal, quoted identifier or comment opened by `match` ends."""
    start = match.end()
    if kind == "block_comment":
        depth, position = 1, start
        while depth:
            close = sql.find("*/", position)
            if close < 0:
                break
            opened = sql.find("/*", position, close)
            depth, position = (depth + 1, opened + 2) if opened >= 0 else (depth - 1, close + 2)
        else:
            return position
    elif kind == "dollar":
        close = sql.find(match.group(), start)
        if close >= 0:
            return close + len(match.group())
    else:
        body = {"escape_string": _ESCAPE_BODY, "string": _STRING_BODY, "quoted": _QUOTED_BODY}[kind]
        found = body.match(sql, start)
        if found is not None:
            return found.end()
    raise ValueError(f"unterminated {kind.replace('_', ' ')} at offset {match.start()}")


def validate_identifier(name: object) -> str:
    """`name` if it is a plain lower-case SQL identifier of at most 63 characters, else `ValueError`."""
    if not isinstance(name, str) or IDENTIFIER.fullmatch(name) is None:
        raise ValueError(
            f"invalid table or identifier name {name!r}: use 1 to 63 characters of a-z, 0-9 "
            "and _, not starting with a digit nor with pg_ (PostgreSQL's own names: pg_catalog is "
            'searched first, so a "pg_..." table may be a system catalog)'
        )
    return name


def quote_identifier(name: object) -> str:
    """The validated identifier in double quotes."""
    return f'"{validate_identifier(name)}"'


@attrs.frozen(slots=True)
class Constant:
    """A string constant for a slot that DDL cannot take as a parameter (the text search
    configuration and payload path of a generated column), written `'text'`. The caller checks
    what it means; here it may hold no quote, backslash or NUL, so it cannot end early and reads
    the same whatever standard_conforming_strings says."""

    text: str = attrs.field(validator=attrs.validators.instance_of(str))

    @text.validator
    def _plain(self, _: attrs.Attribute[str], value: str) -> None:
        if re.search(r"['\\\x00]", value):
            raise ValueError(f"a template constant holds no quote, backslash or NUL, got {value!r}")


SlotValue = str | int | Constant  # what fills a {slot}: an identifier, digits or a constant


def slot_text(slot: str, value: object) -> str:
    """What fills slot `{slot}`: the quoted identifier, the digits of a non-negative `int`, or a
    `Constant` in single quotes; anything else raises `ValueError`."""
    if isinstance(value, Constant):
        return f"'{value.text}'"
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"template slot {{{slot}}} takes a non-negative integer, got {value}")
        return str(value)
    return quote_identifier(value)


def render(template: str, **slots: SlotValue) -> str:
    """`template` with every `{slot}` filled by `slot_text` (parameters left as they are). A slot
    without a value raises `ValueError`."""
    out: list[str] = []
    for piece in pieces(template):
        if isinstance(piece, Slot):
            if piece.name not in slots:
                raise ValueError(f"template slot {{{piece.name}}} has no value")
            out.append(slot_text(piece.name, slots[piece.name]))
        else:
            out.append(piece if isinstance(piece, str) else f"${piece.number}")
    return "".join(out)
