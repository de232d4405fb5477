"""The forms of an action's text that a restricting rule's `input` pattern is matched against.

A pattern written for `DROP TABLE` must not be dodged by `DROP/**/TABLE`, `drop  table -- x` or
`psql -c "DROP TABLE …"`. So deny, approve and sandbox patterns match the text as written OR any
normalized form: comments stripped and whitespace collapsed (SQL comments for SQL and for SQL found
inside a shell line; `#` comments for command lines) and, for SQL, sqlglot's rendering
of its tokens (keywords upper-cased, literals re-quoted, spacing canonical). `allow` patterns match the text as
written only: a normalized form can only widen what a restriction catches, never what a permission
grants. Pure functions; the engine computes the forms lazily, once per decision.
"""

from __future__ import annotations

import regex
import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from interlock.model import Kind

#: A quoted SQL literal or identifier is kept whole; a comment outside quotes becomes one space.
_SQL_COMMENT = regex.compile(
    r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)|/\*.*?\*/|--[^\n]*""",
    regex.DOTALL,
)
_SPACE = regex.compile(r"\s+")
_SHELL_COMMENT = regex.compile(r"""('[^']*'|"(?:\\.|[^"\\])*"|\\.)|(?:(?<=^|[\s;&|()])#[^\n]*)""")
_BLOCK_COMMENT = regex.compile(r"/\*.*?\*/", regex.DOTALL)
#: Kinds whose text is a command line.
_COMMAND_KINDS = {Kind.shell, Kind.kubectl, Kind.aws}
#: sqlglot on a pathological payload can be slow; beyond this size the rendering form is skipped
#: (the comment-stripped form still applies).
MAX_RENDER_CHARS = 200_000


def collapse(text: str) -> str:
    return str(_SPACE.sub(" ", text)).strip()


def strip_sql_comments(sql: str) -> str:
    """`DROP/**/TABLE x -- why` → `DROP TABLE x`: comments outside quotes removed, whitespace collapsed."""
    return collapse(str(_SQL_COMMENT.sub(lambda m: m.group(1) or " ", sql)))


def render_sql(sql: str, dialect: str) -> str | None:
    """The statements as sqlglot's tokenizer reads them (the tokenizer the SQL classifier judges with):
    comments dropped, keywords upper-case, literals and quoted names re-quoted, one space between
    tokens (none inside `a.b`, `f(x)`, before `,`/`;`). None when sqlglot cannot read it.

    Tokens, not a full parse-and-generate: the parse costs ~8x more per decision (bench_normalize)
    and adds nothing a pattern over these words could see."""
    if len(sql) > MAX_RENDER_CHARS:
        return None
    try:
        tokens = sqlglot.tokenize(sql, read=dialect or None)
    except (SqlglotError, ValueError, RecursionError):
        return None
    out: list[str] = []
    glue = True  # no space before the next token
    previous: TokenType | None = None
    for token in tokens:
        kind = token.token_type
        if kind is TokenType.HEREDOC_STRING:
            text = "$$" + token.text + "$$"
        elif kind.name.endswith("STRING"):
            text = "'" + token.text.replace("'", "''") + "'"
        elif kind is TokenType.IDENTIFIER:
            text = '"' + token.text.replace('"', '""') + '"'
        elif kind in (TokenType.VAR, TokenType.NUMBER, TokenType.PARAMETER):
            text = token.text
        else:
            text = token.text.upper()
        call = text == "(" and previous in (TokenType.VAR, TokenType.IDENTIFIER)  # f(x), not IN (…)
        if not (glue or call or text in _TIGHT_BEFORE):
            out.append(" ")
        out.append(text)
        glue, previous = text in _TIGHT_AFTER, kind
    return "".join(out) or None


_TIGHT_BEFORE = {",", ")", ".", ";", "]"}
_TIGHT_AFTER = {"(", ".", "["}


def strip_shell_comments(command: str) -> str:
    """`rm  -rf  /srv # tidy` → `rm -rf /srv`: a `#` starting a word (outside quotes) comments out the
    rest of its line, as in the shell; whitespace collapsed. Quotes are kept: a pattern for
    `DROP TABLE` still finds it inside `psql -c "DROP TABLE t"`."""
    return collapse(str(_SHELL_COMMENT.sub(lambda m: m.group(1) or " ", command)))


def input_forms(text: str, kind: Kind, inner_kinds: tuple[str, ...] = (), dialect: str = "postgres") -> tuple[str, ...]:
    """The text as written first, then its distinct normalized forms."""
    forms = [text]
    if kind is Kind.sql:
        forms.append(strip_sql_comments(text))
        rendered = render_sql(text, dialect)
        if rendered:
            forms.append(rendered)
    elif kind in _COMMAND_KINDS:
        forms.append(strip_shell_comments(text))
        if "sql" in inner_kinds:
            # The SQL sits inside shell quotes, so its block comments are removed wherever they are.
            forms.append(collapse(str(_BLOCK_COMMENT.sub(" ", forms[-1]))))
    return tuple(dict.fromkeys(forms))
