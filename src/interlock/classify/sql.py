"""The SQL classifier: what would these statements do to the database?

Every statement of the input is judged on its own and the action is as risky as its riskiest
statement. Statements are split on sqlglot's tokens (so `;` inside strings, comments and
`$$ … $$` bodies is not a separator), then judged by their leading keywords where sqlglot has
no full grammar (COPY, SET ROLE, EXPLAIN ANALYZE, VACUUM, DO, roles …) and otherwise by walking
the whole syntax tree, so a DELETE hidden in a CTE or a subquery is found.

Decisions (documented in docs/classifiers.md):

- DELETE is destructive; without WHERE or with an always-true WHERE it is also `mass`.
- UPDATE with a real WHERE is write; without one (or always true) it is destructive + `mass`.
- REVOKE is destructive + `privilege`: it breaks whoever relied on the access, and the
  previous grants are not recorded anywhere to put back. GRANT is write + `privilege`.
- `SELECT … FOR UPDATE/SHARE` is write: its row locks block production writers.
- `pg_terminate_backend`, `pg_cancel_backend`, `lo_unlink` are destructive; functions that run
  SQL given as text or touch server files (`dblink_exec`, `dblink`, `query_to_xml`,
  `pg_read_file`, `lo_export` …) are unknown: what they do is in a string we do not parse.
- DO blocks, CALL, EXECUTE, CREATE FUNCTION/PROCEDURE/RULE bodies are unknown.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from interlock.classify import sql_functions
from interlock.classify.privilege import is_admin_name
from interlock.classify.registry import (
    CONSTRUCTOR_FIELDS,
    DISCLOSES,
    ClassifyContext,
    built_classification,
    register,
    unaccepted,
    unknown,
)
from interlock.classify.sql_functions import BUILTIN_SCHEMAS, RISKY_TYPED
from interlock.model import Classification, Kind, Risk

# sqlglot logs a warning for every statement it falls back to an opaque `Command` for; we
# judge those ourselves (as unknown when not recognised), so the warning is noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

TRANSACTION_WORDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE TRANSACTION"}
)
READ_WORDS = frozenset(
    {
        "SHOW",
        "DISCARD",
        "LISTEN",
        "UNLISTEN",
        "DEALLOCATE",
        "FETCH",
        "MOVE",
        "CLOSE",
        "DESCRIBE",
        "DESC",
        "USE",
    }
)
MAINTENANCE_WORDS = frozenset(
    {
        "VACUUM",
        "REINDEX",
        "CLUSTER",
        "REFRESH",
        "LOCK",
        "ANALYZE",
        "ANALYSE",
        "CHECKPOINT",
        "NOTIFY",
        "COMMENT",
        "SECURITY",
        "IMPORT",
        "OPTIMIZE",
    }
)
OPAQUE_WORDS = frozenset({"DO", "CALL", "EXECUTE", "EXEC", "LOAD", "SOURCE", "HANDLER"})
PRIVILEGE_OBJECTS = frozenset({"ROLE", "USER", "GROUP"})
#: Words between CREATE and the object kind that do not change what is created.
CREATE_MODIFIERS = frozenset(
    {
        "OR",
        "REPLACE",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "GLOBAL",
        "LOCAL",
        "UNIQUE",
        "MATERIALIZED",
        "RECURSIVE",
        "TRUSTED",
        "PROCEDURAL",
        "CONSTRAINT",
        "DEFAULT",
        "EXTERNAL",
        "TRANSIENT",
        "VOLATILE",
        "IF",
        "NOT",
        "EXISTS",
    }
)
OPAQUE_CREATES = frozenset({"FUNCTION", "PROCEDURE", "RULE", "LANGUAGE", "AGGREGATE", "OPERATOR", "CAST"})


@dataclass
class StatementJudgement:
    """What one statement would do."""

    type: str
    risk: Risk
    tags: set[str] = field(default_factory=set)
    tables: list[str] = field(default_factory=list)
    note: str = ""
    #: (object kind, name) created or dropped: a DROP and a CREATE of the same object is a `replace`.
    drops: list[tuple[str, str]] = field(default_factory=list)
    creates: list[tuple[str, str]] = field(default_factory=list)
    #: Functions called that no catalogue knows (`purge_invoices`, `billing.close_month`).
    calls: list[str] = field(default_factory=list)

    def raise_to(self, risk: Risk, *tags: str, note: str = "") -> None:
        # The summary names the riskiest thing found: a riskier finding replaces the note.
        riskier = risk.rank > self.risk.rank or (risk is Risk.unknown and self.risk is not Risk.unknown)
        self.risk = Risk.highest([self.risk, risk])
        self.tags.update(tags)
        if note and (riskier or not self.note):
            self.note = note


class SqlReader:
    """A dialect with its tokenizer and parser, made once per thread and dialect name: building them is
    a tenth of a short statement's judging (`Dialect.get_or_raise` makes a new dialect on every call, and
    the tokenizer's core copies its tables), and both start every `tokenize`/`parse` afresh (`reset()`),
    returning new lists and trees. Per thread: neither may be shared by two threads at once."""

    __slots__ = ("dialect", "parser", "tokenizer")

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.tokenizer = dialect.tokenizer()
        self.parser = dialect.parser()

    def tokenize(self, sql: str) -> list[Token]:
        return self.tokenizer.tokenize(sql)


_READERS = threading.local()
#: Dialect names come from the policy's targets, so there are few; past this many, start again.
_MAX_READERS = 16


def sql_reader(name: str) -> SqlReader:
    """This thread's reader for the dialect `name` (`postgres`, `mysql, normalization_strategy = …`);
    raises as `Dialect.get_or_raise` does for a name it does not know."""
    readers: dict[str, SqlReader] | None = getattr(_READERS, "readers", None)
    if readers is None:
        readers = _READERS.readers = {}
    reader = readers.get(name)
    if reader is None:
        if len(readers) >= _MAX_READERS:
            readers.clear()
        reader = readers[name] = SqlReader(Dialect.get_or_raise(name))
    return reader


@register(Kind.sql)
def classify_sql(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    sql = payload.get("sql")
    if not isinstance(sql, str):
        return unaccepted(Kind.sql, "sql action without a `sql` text")
    try:
        reader = sql_reader(context.sql_dialect)
    except (ValueError, SqlglotError):
        return unknown(f"unknown SQL dialect {context.sql_dialect!r}: cannot judge the statements")
    try:
        tokens = reader.tokenize(sql)
    except Exception as exc:
        return unknown("SQL could not be tokenized: cannot judge it", error=str(exc)[:200])
    statements = split_statements(tokens)
    if not statements:
        return unknown("no SQL statement found")
    judgements = [judge_statement(group, sql, reader) for group in statements]
    for judgement in judgements:
        if judgement.calls:
            judge_calls(judgement, context.read_only_functions)
    result = combine(judgements)
    disclosed = None
    if may_name_credentials(sql):  # a quick test on the text: almost no statement names these tables
        disclosed = next((what for group in statements if (what := credential_read(words_of(group)))), None)
    if disclosed is None:
        return result
    return result.model_copy(update={"tags": tuple(sorted({*result.tags, "secrets"})),
                                     "details": {**result.details, DISCLOSES: disclosed}})


#: The catalogs that hold credentials (last part of the name, upper case): PostgreSQL's password hashes
#: (an MD5 hash logs in as is) and the passwords of user mappings to foreign servers. Their `pg_roles`
#: and `pg_user` views show `********`. Judged as tables: what is selected from them is not looked at.
CREDENTIAL_CATALOGS = {
    "PG_AUTHID": "PostgreSQL password hashes (pg_authid)",
    "PG_SHADOW": "PostgreSQL password hashes (pg_shadow)",
    "PG_USER_MAPPING": "passwords of foreign-server user mappings",
    "PG_USER_MAPPINGS": "passwords of foreign-server user mappings",
    "PG_SUBSCRIPTION": "replication connection strings with their passwords (subconninfo)",
    "USER_MAPPING_OPTIONS": "passwords of foreign-server user mappings",
    # MySQL keeps the replication source's password in plain text here.
    "SLAVE_MASTER_INFO": "the replication password (mysql.slave_master_info)",
}
#: Words of which a statement that reads credentials names at least one (case-insensitive).
CREDENTIAL_HINT_WORDS = (
    "pg_authid", "pg_shadow", "user_mapping", "pg_subscription", "subconninfo", "sql_logins", "user$", "mysql", "show",
    "authentication_string",
)
CREDENTIAL_HINT = re.compile("(?i)" + "|".join(re.escape(word) for word in CREDENTIAL_HINT_WORDS))


def may_name_credentials(sql: str) -> bool:
    """`CREDENTIAL_HINT.search(sql)`, at a tenth of the cost on ASCII text: a case-insensitive alternation
    is scanned character by character, `in` on the lower-cased text is not. Other text (where `(?i)` also
    folds `ſ` to `s` and the Kelvin sign to `k`) is searched with the pattern itself. On ASCII text `(?i)`
    matches exactly what the lower-cased text contains (the words are lower case)."""
    if sql.isascii():
        lowered = sql.lower()
        return any(word in lowered for word in CREDENTIAL_HINT_WORDS)
    return CREDENTIAL_HINT.search(sql) is not None


#: Qualified tables that hold password hashes: SQL Server logins, Oracle's user$.
CREDENTIAL_TABLES = {
    "SYS.SQL_LOGINS": "SQL Server password hashes (sys.sql_logins)",
    "SYS.USER$": "Oracle password hashes (sys.user$)",
}
#: MySQL's `mysql.user` is also where everyone lists accounts: only its hash columns (or `*`) disclose.
MYSQL_HASH_COLUMNS = frozenset({"AUTHENTICATION_STRING", "PASSWORD", "*"})
QUOTES = '`"[]'



def credential_read(words: list[str]) -> str | None:
    """What a statement reads of the database's own credentials (for `registry.DISCLOSES`), or None.
    Judged on the tokens, so a statement sqlglot cannot parse is still seen."""
    if words[:3] == ["SHOW", "CREATE", "USER"]:
        return "a MySQL account's password hash (SHOW CREATE USER)"
    # Columns only these catalogs have, however the table is reached (`USE mysql; SELECT … FROM user`).
    if "AUTHENTICATION_STRING" in words:
        return "MySQL password hashes (authentication_string)"
    if "SUBCONNINFO" in words:
        return "replication connection strings with their passwords (subconninfo)"
    names: list[str] = []
    joining = False
    for word in words:
        part = word.strip(QUOTES)
        if word == ".":
            joining = bool(names)
        elif joining:
            names[-1] = f"{names[-1]}.{part}"
            joining = False
        else:
            names.append(part)
    for name in names:
        last = name.rsplit(".", 1)[-1]
        if last in CREDENTIAL_CATALOGS:
            return CREDENTIAL_CATALOGS[last]
        found = next((what for table, what in CREDENTIAL_TABLES.items() if name.endswith(table)), None)
        if found is not None:
            return found
        if name.endswith("MYSQL.USER") and MYSQL_HASH_COLUMNS & set(words):
            return "MySQL password hashes (mysql.user)"
    return None


def split_statements(tokens: list[Token]) -> list[list[Token]]:
    groups: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            groups.append([])
        else:
            groups[-1].append(token)
    return [group for group in groups if group]


def words_of(tokens: list[Token]) -> list[str]:
    return [t.text.upper() for t in tokens if t.token_type != TokenType.STRING]


#: The statement tags (policies match `tags: [drop]` instead of a regex on the text), by leading keyword.
STATEMENT_TAGS = {
    "DROP": "drop",
    "TRUNCATE": "truncate",
    "ALTER": "alter",
    "GRANT": "grant",
    "REVOKE": "revoke",
    "DELETE": "delete",
    "UPDATE": "update",
    "INSERT": "insert",
    "REPLACE": "insert",
    "UPSERT": "insert",
    "CREATE": "create",
    "MERGE": "merge",
    "COPY": "copy",
    "CALL": "call",
    "EXEC": "call",
}


def judge_statement(tokens: list[Token], sql: str, reader: SqlReader) -> StatementJudgement:
    judgement = judge_statement_text(tokens, sql, reader)
    tag = STATEMENT_TAGS.get(tokens[0].text.upper())
    if tag is not None:
        judgement.tags.add(tag)
    return judgement


def judge_statement_text(tokens: list[Token], sql: str, reader: SqlReader) -> StatementJudgement:
    words = words_of(tokens[:8])
    first = words[0] if words else ""
    body = tokens  # the statement's tokens, with a Command's text read back into tokens
    if tokens[0].token_type == TokenType.COMMAND and len(tokens) > 1 and tokens[1].token_type == TokenType.STRING:
        # sqlglot keeps the rest of statements it has no grammar for (EXPLAIN, DO, VACUUM …) as one
        # string: read that string's own tokens to see what the statement does.
        rest = tokens[1].text
        try:
            rest_tokens = reader.tokenize(rest)
        except Exception:
            return StatementJudgement(first.lower(), Risk.unknown, note=f"{first} with text we cannot read")
        if first == "EXPLAIN":
            return judge_explain(rest_tokens, rest, reader)
        if first in ("PREPARE", "DECLARE"):
            return judge_wrapped(rest_tokens, rest, reader, first)
        words = [first, *words_of(rest_tokens[:7])]
        body = [tokens[0], *rest_tokens]
    second = words[1] if len(words) > 1 else ""
    text = sql[tokens[0].start : tokens[-1].end + 1]

    if first in TRANSACTION_WORDS:
        if first in ("PREPARE", "COMMIT", "ROLLBACK") and second == "PREPARED":
            return StatementJudgement("transaction", Risk.write, note=f"{first} PREPARED")
        return StatementJudgement("transaction", Risk.read, note=first)
    if first in READ_WORDS:
        return StatementJudgement(first.lower(), Risk.read, note=first)
    if first in ("SET", "RESET"):
        return judge_set(words)
    if first == "EXPLAIN":
        return judge_explain(tokens[1:], sql, reader)
    if first in OPAQUE_WORDS:
        return StatementJudgement(first.lower(), Risk.unknown, note=f"{first} runs code we cannot see into")
    if first in ("PREPARE", "DECLARE"):
        return judge_wrapped(tokens[1:], sql, reader, first)
    if first in MAINTENANCE_WORDS:
        tags = {"schema"} if first in ("COMMENT", "SECURITY", "IMPORT") else set()
        return StatementJudgement(first.lower(), Risk.write, tags, note=" ".join(words[:2]))
    if first == "COPY":
        return judge_copy(tokens, sql, reader)
    if first == "GRANT":
        return judge_grant(body, text)
    if first == "REVOKE":
        return StatementJudgement(
            "revoke",
            Risk.destructive,
            {"privilege"},
            note=f"REVOKE removes access someone relies on: {shorten(text, 80)}",
        )
    if first in ("CREATE", "ALTER", "DROP"):
        kind = object_kind(words[1:])
        if first == "ALTER" and second == "DEFAULT":
            return judge_default_privileges(body, text)
        server_role = kind == "SERVER" and "ROLE" in words[2:4]  # SQL Server: ALTER SERVER ROLE sysadmin …
        if kind in PRIVILEGE_OBJECTS or (first == "ALTER" and (server_role or kind == "AUTHORIZATION")):
            if first == "DROP":
                return StatementJudgement(f"drop {kind.lower()}", Risk.destructive, {"privilege"}, note=f"DROP {kind}")
            return judge_role(body, first, kind)
        if first == "ALTER" and (owner := new_owner(body)) is not None:
            return StatementJudgement(
                "alter owner", Risk.destructive, {"privilege"},
                note=f"ALTER … OWNER TO {owner}: the owner may drop it and grant anything on it",
            )
        if first == "CREATE" and kind in OPAQUE_CREATES:
            return StatementJudgement(
                f"create {kind.lower()}", Risk.unknown, {"schema"}, note=f"CREATE {kind} body is code",
            )
        if first == "ALTER" and kind == "SYSTEM":
            return StatementJudgement(
                "alter system", Risk.write, {"schema"}, note="ALTER SYSTEM changes server settings",
            )
        if first == "DROP" and kind == "OWNED":
            return StatementJudgement(
                "drop owned", Risk.destructive, {"mass", "privilege"}, note="DROP OWNED drops every object",
            )
    if first == "REPLACE":
        return StatementJudgement("replace", Risk.write, {"replace"}, note="REPLACE INTO deletes and re-inserts rows")
    if first == "REASSIGN":
        return StatementJudgement(
            "reassign owned", Risk.destructive, {"privilege"},
            note="REASSIGN OWNED gives away every object a role owns",
        )
    if first == "TRUNCATE":
        judgement = StatementJudgement(
            "truncate", Risk.destructive, {"mass", "irreversible"}, note="TRUNCATE empties tables",
        )
        if "CASCADE" in words_of(tokens):
            judgement.tags.add("cascade")
        judgement.tables = [t.text for t in tokens[1:] if t.token_type in (TokenType.VAR, TokenType.IDENTIFIER)][:1]
        parsed = parse(tokens, sql, reader)
        if parsed is not None:
            judgement.tables = tables_in(parsed)
        return judgement
    parsed = parse(tokens, sql, reader)
    if parsed is None:
        return StatementJudgement("unparsable", Risk.unknown, note=f"could not parse `{shorten(text, 40)}`")
    judgement = judge_tree(parsed)
    if is_locking_read(tokens) and judgement.risk is Risk.read:
        judgement.raise_to(Risk.write, note="SELECT … FOR UPDATE/SHARE locks rows")
    return judgement


def parse(tokens: list[Token], sql: str, reader: SqlReader) -> exp.Expr | None:
    try:
        trees = reader.parser.parse(tokens, sql)
    except Exception:
        return None
    trees = [t for t in trees if t is not None]
    return trees[0] if len(trees) == 1 else None


def object_kind(words: list[str]) -> str:
    for word in words:
        if word not in CREATE_MODIFIERS:
            return word
    return ""


# --- privileges: the line between a narrow grant (write) and an escalation (destructive) ----------------

#: Privileges (as words) that are administrator power or the power to grant: MySQL SUPER/FILE, SQL
#: Server CONTROL/IMPERSONATE, Snowflake OWNERSHIP and MANAGE GRANTS, Oracle `… ANY …` privileges.
ADMIN_PRIVILEGES = frozenset(
    {"ALL", "SUPER", "FILE", "PROXY", "OWNERSHIP", "CONTROL", "IMPERSONATE", "SYSTEM_USER", "SUPERUSER", "ANY",
     "GRANTS", "TAKE", "SYSDBA", "SYSOPER"}
)
ADMIN_PRIVILEGE_PHRASES = (("CREATE", "USER"), ("CREATE", "ROLE"), ("CREATE", "LOGIN"), ("GRANT", "OPTION"))
#: Role attributes (PostgreSQL) that are superuser power or the power to grant any role.
ADMIN_ATTRIBUTES = frozenset({"SUPERUSER", "CREATEROLE", "BYPASSRLS", "REPLICATION"})
#: Words that introduce something other than a privilege or role name in a GRANT.
ROLE_KEYWORDS = frozenset({"ROLE", "DATABASE", "APPLICATION", "GROUP", "USER"})


def top_level(tokens: list[Token]) -> list[Token]:
    """The tokens outside parentheses (column lists, function arguments)."""
    kept: list[Token] = []
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0:
            kept.append(token)
    return kept


def find_word(tokens: list[Token], *words: str, start: int = 0) -> int:
    for index in range(start, len(tokens)):
        if tokens[index].token_type != TokenType.STRING and tokens[index].text.upper() in words:
            return index
    return len(tokens)


def grant_escalation(tokens: list[Token]) -> str | None:
    """Why a GRANT (`GRANT … [ON …] TO … [WITH …]`, tokens from GRANT on) is an escalation, else None."""
    flat = top_level(tokens)
    to = find_word(flat, "TO", start=1)
    on = find_word(flat[:to], "ON", start=1)
    granted = flat[1:on]
    words = [t.text.upper() for t in granted if t.token_type != TokenType.STRING]
    if any(w in ADMIN_PRIVILEGES or w.endswith("_ADMIN") for w in words):
        shown = next(w for w in words if w in ADMIN_PRIVILEGES or w.endswith("_ADMIN"))
        return f"grants {shown}" + (" PRIVILEGES" if shown == "ALL" else "")
    if any(pair in ADMIN_PRIVILEGE_PHRASES for pair in itertools.pairwise(words)):
        return "grants the power to create users or grant privileges"
    names = [t.text for t in granted if t.token_type in (TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING)]
    admin = next((n for n in names if n.upper() not in ROLE_KEYWORDS and is_admin_name(n)), None)
    if admin is not None:
        return f"grants the administrator role {admin}"
    grantees = flat[to + 1 :]
    with_at = find_word(grantees, "WITH")
    if any(t.token_type != TokenType.STRING and t.text.upper() == "PUBLIC" for t in grantees[:with_at]):
        return "grants to PUBLIC: every role, present and future"
    options = [t.text.upper() for t in grantees[with_at + 1 :]]
    if options[:2] == ["GRANT", "OPTION"] or (options[:1] == ["ADMIN"] and options[1:2] != ["FALSE"]):
        return f"WITH {' '.join(options[:2])}: may grant it on"
    return None


def judge_grant(tokens: list[Token], text: str) -> StatementJudgement:
    why = grant_escalation(tokens)
    if why is not None:
        return StatementJudgement("grant", Risk.destructive, {"privilege"}, note=f"{why}: {shorten(text, 80)}")
    return StatementJudgement("grant", Risk.write, {"privilege"}, note=f"GRANT: {shorten(text, 100)}")


def judge_default_privileges(tokens: list[Token], text: str) -> StatementJudgement:
    """ALTER DEFAULT PRIVILEGES … GRANT …: the grant applies to every future object."""
    grant = find_word(tokens, "GRANT")
    why = grant_escalation(tokens[grant:]) if grant < len(tokens) else None
    if why is not None:
        note = f"ALTER DEFAULT PRIVILEGES {why} on every future object"
        return StatementJudgement("alter default privileges", Risk.destructive, {"privilege", "grant"}, note=note)
    note = f"ALTER DEFAULT PRIVILEGES: {shorten(text, 80)}"
    return StatementJudgement("alter default privileges", Risk.write, {"privilege"}, note=note)


def judge_role(tokens: list[Token], first: str, kind: str) -> StatementJudgement:
    """CREATE/ALTER ROLE|USER|GROUP, ALTER SERVER ROLE, ALTER AUTHORIZATION: which power does it give?"""
    flat = top_level(tokens)
    words = [t.text.upper() if t.token_type != TokenType.STRING else "" for t in flat]
    kind_at = words.index(kind) if kind in words else 1
    if kind == "AUTHORIZATION":  # SQL Server: ALTER AUTHORIZATION ON x TO owner
        note = "ALTER AUTHORIZATION gives an object a new owner"
        return StatementJudgement("alter authorization", Risk.destructive, {"privilege"}, note=note)
    if kind == "SERVER":  # ALTER SERVER ROLE name …
        kind_at = find_word(flat, "ROLE")
    name = flat[kind_at + 1].text if kind_at + 1 < len(flat) else ""
    rest = words[kind_at + 2 : find_word(flat, "SET", "RESET", start=kind_at + 2)]
    note = f"{first} {kind} {name}".strip()
    judgement = StatementJudgement(f"{first.lower()} {kind.lower()}", Risk.write, {"privilege"}, note=note)
    attribute = next((w for w in rest if w in ADMIN_ATTRIBUTES), None)
    if attribute is not None:
        judgement.raise_to(Risk.destructive, note=f"{first} {kind} {name} {attribute}: administrator power")
    if "ADD" in rest and is_admin_name(name):  # ALTER SERVER ROLE sysadmin ADD MEMBER x; ALTER GROUP admins ADD USER x
        judgement.raise_to(Risk.destructive, note=f"adds a member to the administrator role {name}")
    for index, word in enumerate(rest[:-1]):  # CREATE ROLE x IN ROLE postgres
        if word == "IN" and rest[index + 1] in ("ROLE", "GROUP"):
            members = flat[kind_at + 2 + index + 2 :]
            admin = next((t.text for t in members if is_admin_name(t.text)), None)
            if admin is not None:
                judgement.raise_to(Risk.destructive, note=f"{first} {kind} {name} joins the administrator role {admin}")
    return judgement


def new_owner(tokens: list[Token]) -> str | None:
    """`ALTER TABLE t OWNER TO x` → x; not `ALTER TABLE t RENAME owner TO x` (a column named owner)."""
    flat = top_level(tokens)
    for index in range(1, len(flat) - 2):
        if flat[index].token_type == TokenType.STRING:
            continue
        ownership = flat[index].text.upper() == "OWNER" and flat[index + 1].text.upper() == "TO"
        if ownership and flat[index - 1].text.upper() not in ("RENAME", "COLUMN", "CONSTRAINT", "ATTRIBUTE"):
            return flat[index + 2].text
    return None


def judge_set(words: list[str]) -> StatementJudgement:
    rest = [w for w in words[1:] if w not in ("SESSION", "LOCAL")]
    if rest[:1] == ["ROLE"] or rest[:1] == ["AUTHORIZATION"]:
        return StatementJudgement("set role", Risk.write, {"privilege"}, note="SET ROLE changes whose rights apply")
    if rest[:1] == ["SESSION_REPLICATION_ROLE"]:
        return StatementJudgement("set", Risk.write, note="session_replication_role disables triggers and foreign keys")
    return StatementJudgement("set", Risk.read, note=" ".join(words[:2]))


def judge_explain(tokens: list[Token], sql: str, reader: SqlReader) -> StatementJudgement:
    """EXPLAIN only plans; EXPLAIN ANALYZE *runs* the statement, so it is as risky as it."""
    statement_starts = {
        "SELECT",
        "WITH",
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "CREATE",
        "EXECUTE",
        "VALUES",
        "TABLE",
        "DECLARE",
    }
    analyze = False
    depth = 0
    for index, token in enumerate(tokens):
        word = token.text.upper()
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif word in ("ANALYZE", "ANALYSE"):
            next_word = tokens[index + 1].text.upper() if index + 1 < len(tokens) else ""
            analyze = analyze or next_word not in FALSE_WORDS
        elif depth == 0 and word in statement_starts:
            inner = judge_statement(tokens[index:], sql, reader)
            if not analyze:
                return StatementJudgement("explain", Risk.read, tables=inner.tables, note="EXPLAIN (plans only)")
            inner.note = f"EXPLAIN ANALYZE executes it: {inner.note or inner.type}"
            return inner
    return StatementJudgement("explain", Risk.unknown, note="EXPLAIN of something we cannot read")


#: What PostgreSQL's parse_bool reads as false (it accepts unique prefixes).
FALSE_WORDS = frozenset({"F", "FA", "FAL", "FALS", "FALSE", "N", "NO", "OF", "OFF", "0"})


def judge_wrapped(tokens: list[Token], sql: str, reader: SqlReader, word: str) -> StatementJudgement:
    """PREPARE x AS stmt / DECLARE c CURSOR FOR stmt: judge the statement inside."""
    marker = "AS" if word == "PREPARE" else "FOR"
    for index, token in enumerate(tokens):
        if token.text.upper() == marker and index + 1 < len(tokens):
            return judge_statement(tokens[index + 1 :], sql, reader)
    return StatementJudgement(word.lower(), Risk.unknown, note=f"{word} without a statement we can read")


def judge_copy(tokens: list[Token], sql: str, reader: SqlReader) -> StatementJudgement:
    """COPY … TO/FROM PROGRAM runs a shell command on the database server; `COPY (query) TO` runs
    the query, which may be a `DELETE … RETURNING`."""
    depth = 0
    direction = ""
    target: Token | None = None
    inner = StatementJudgement("copy", Risk.read)
    for index, token in enumerate(tokens[1:], start=1):
        if token.token_type == TokenType.L_PAREN and depth == 0 and index == 1:
            closing = matching_paren(tokens, index)
            if closing is None:
                return StatementJudgement("copy", Risk.unknown, note="COPY with an unclosed query")
            inner = judge_statement(tokens[index + 1 : closing], sql, reader) if closing > index + 1 else inner
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and token.text.upper() in ("TO", "FROM"):
            direction = token.text.upper()
            target = tokens[index + 1] if index + 1 < len(tokens) else None
            break
    table = tokens[1].text if len(tokens) > 1 and tokens[1].token_type != TokenType.L_PAREN else ""
    tables = [table] if table else []
    if target is None:
        return StatementJudgement("copy", Risk.unknown, tables=tables, note="COPY without TO/FROM")
    where = target.text.upper() if target.token_type != TokenType.STRING else "FILE"
    if where == "PROGRAM":
        return StatementJudgement(
            "copy", Risk.destructive, {"interpreter"}, tables, note="COPY … PROGRAM runs a server command",
        )
    if direction == "FROM":
        return StatementJudgement(
            "copy", Risk.write, set(), tables, note=f"COPY {table} FROM {where.lower()} loads rows",
        )
    if where == "STDOUT":
        inner.raise_to(Risk.read, note="COPY … TO STDOUT exports rows")
        return inner
    inner.raise_to(Risk.write, "exfiltration", note="COPY … TO writes a file on the server")
    return inner


def matching_paren(tokens: list[Token], start: int) -> int | None:
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[index].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return index
    return None


def is_locking_read(tokens: list[Token]) -> bool:
    for index, token in enumerate(tokens[:-1]):
        if token.token_type == TokenType.FOR and tokens[index + 1].text.upper() in (
            "UPDATE",
            "SHARE",
            "NO",
            "KEY",
        ):
            return True
    return False


def table_name(node: exp.Expr | None) -> str:
    if isinstance(node, exp.Table):
        return ".".join(part for part in (node.catalog, node.db, node.name) if part)
    if isinstance(node, exp.Expr):
        inner = node.find(exp.Table)
        return table_name(inner) if inner is not None else ""
    return ""


def tables_in(tree: exp.Expr) -> list[str]:
    names: list[str] = []
    for table in tree.find_all(exp.Table):
        name = table_name(table)
        if name and name not in names:
            names.append(name)
    return names


#: Nodes for functions sqlglot has no grammar for: judged by their name alone.
NAMED_CALLS: tuple[type[exp.Expr], ...] = (exp.Anonymous, exp.AnonymousAggFunc, exp.ParameterizedAgg)


def function_name(node: exp.Func) -> str:
    if isinstance(node, NAMED_CALLS):
        return str(node.name).lower()
    return node.sql_name().lower()


#: Top-level trees whose own type says nothing dangerous; what matters is what they contain.
READ_TREES: tuple[type[exp.Expr], ...] = (
    exp.Select,
    exp.SetOperation,
    exp.Subquery,
    exp.Values,
    exp.Describe,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Show,
    exp.Table,
)


JUDGED_TREES: tuple[type[exp.Expr], ...] = (
    *READ_TREES,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Analyze,
    exp.Grant,
    exp.Revoke,
)


def judge_tree(tree: exp.Expr) -> StatementJudgement:
    """Walk every node: the riskiest thing anywhere in the statement decides."""
    if not isinstance(tree, JUDGED_TREES):
        return StatementJudgement(type(tree).__name__.lower(), Risk.unknown, note="a statement we do not understand")
    # One walk for what `tables_in` and `judge_node` each walked the tree for (in the same order: `find_all`
    # is this walk filtered), and `judge_node` only for nodes of a type it judges: the others (columns,
    # literals, identifiers: most of a tree) fall through every one of its isinstance tests.
    tables: list[str] = []
    judgement = StatementJudgement(statement_type(tree), Risk.read, tables=tables)
    for node in tree.walk():
        if isinstance(node, exp.Table):
            name = table_name(node)
            if name and name not in tables:
                tables.append(name)
        judged = _JUDGED_NODE.get(type(node))
        if judged is None:
            judged = _JUDGED_NODE[type(node)] = issubclass(type(node), JUDGED_NODES)
        if judged:
            judge_node(node, judgement)
    return judgement


#: Every node type `judge_node` tests for: a node of none of them is left as it is.
JUDGED_NODES: tuple[type[exp.Expr], ...] = (
    exp.Delete, exp.Update, exp.Insert, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable,
    exp.Grant, exp.Revoke, exp.Analyze, exp.Command, exp.Select, exp.Func,
)
#: Node type → whether it is one of JUDGED_NODES (filled as types are met; a few hundred at most).
_JUDGED_NODE: dict[type, bool] = {}


def statement_type(tree: exp.Expr) -> str:
    if isinstance(tree, exp.Select) and isinstance(tree.args.get("with"), exp.With):
        return "with select"
    return type(tree).__name__.lower()


def judge_node(node: exp.Expr, judgement: StatementJudgement) -> None:
    if isinstance(node, exp.Delete):
        target = table_name(node.this)
        where = node.args.get("where")
        if where is None or always_true(where.this):
            why = "without WHERE" if where is None else f"with always-true WHERE {shorten(where.this.sql(), 30)}"
            judgement.raise_to(Risk.destructive, "mass", "delete", note=f"DELETE FROM {target} {why}: every row")
        else:
            note = f"DELETE FROM {target} WHERE {shorten(where.this.sql(), 40)}"
            judgement.raise_to(Risk.destructive, "delete", note=note)
    elif isinstance(node, exp.Update) and node.find_ancestor(exp.Merge) is None:
        target = table_name(node.this)
        where = node.args.get("where")
        if where is None or always_true(where.this):
            why = "without WHERE" if where is None else f"with always-true WHERE {shorten(where.this.sql(), 30)}"
            judgement.raise_to(Risk.destructive, "mass", "update", note=f"UPDATE {target} {why}: every row")
        else:
            judgement.raise_to(Risk.write, "update", note=f"UPDATE {target} WHERE {shorten(where.this.sql(), 40)}")
    elif isinstance(node, exp.Insert):
        target = table_name(node.this)
        if node.args.get("overwrite"):
            judgement.raise_to(
                Risk.destructive, "replace", "insert", note=f"INSERT OVERWRITE {target} replaces all rows",
            )
        else:
            judgement.raise_to(Risk.write, "insert", note=f"INSERT INTO {target}")
    elif isinstance(node, exp.Merge):
        target = table_name(node.this)
        deletes = any(
            isinstance(w.args.get("then"), exp.Var) and str(w.args["then"].this).upper() == "DELETE"
            for w in node.find_all(exp.When)
        )
        if deletes:
            judgement.raise_to(Risk.destructive, "merge", "delete", note=f"MERGE INTO {target} deletes matched rows")
        else:
            judgement.raise_to(Risk.write, "merge", note=f"MERGE INTO {target}")
    elif isinstance(node, exp.Create):
        judge_create(node, judgement)
    elif isinstance(node, exp.Drop):
        if isinstance(node.parent, exp.Alter):
            kind = str(node.args.get("kind") or "part").upper()
            parts = node.args.get("tables") or []
            dropped = ", ".join(table_name(t) if isinstance(t, exp.Table) else t.sql() for t in parts)
            target = table_name(node.parent.this)
            judgement.raise_to(Risk.destructive, "schema", note=f"ALTER {target} DROP {kind} {dropped}".strip())
        else:
            judge_drop(node, judgement)
    elif isinstance(node, exp.Alter):
        judgement.raise_to(Risk.write, "schema", note=f"ALTER {node.args.get('kind') or ''} {table_name(node.this)}")
        drops = [a for a in node.args.get("actions") or [] if "Drop" in type(a).__name__]
        if drops and not isinstance(drops[0], exp.Drop):  # exp.Drop children say it themselves
            judgement.raise_to(Risk.destructive, "schema", note=f"ALTER {table_name(node.this)} drops a part")
    elif isinstance(node, exp.TruncateTable):
        judgement.raise_to(Risk.destructive, "mass", "irreversible", "truncate", note="TRUNCATE empties tables")
    elif isinstance(node, exp.Grant):
        judgement.raise_to(Risk.write, "privilege", "grant", note="GRANT")
    elif isinstance(node, exp.Revoke):
        judgement.raise_to(Risk.destructive, "privilege", "revoke", note="REVOKE")
    elif isinstance(node, exp.Analyze):
        judgement.raise_to(Risk.write, note="ANALYZE")
    elif isinstance(node, exp.Command):
        judgement.raise_to(Risk.unknown, note=f"{node.this} … we cannot read")
    elif isinstance(node, exp.Select) and node.args.get("into") is not None:
        note = f"SELECT INTO {table_name(node.args['into'])} creates a table"
        judgement.raise_to(Risk.write, "schema", "create", note=note)
    elif isinstance(node, exp.Func):
        judge_call(node, judgement)


def judge_call(node: exp.Func, judgement: StatementJudgement) -> None:
    """A function call is as risky as what the function does; one we do not know could do anything."""
    if not isinstance(node, NAMED_CALLS):
        effect = RISKY_TYPED.get(type(node), "pure")  # a built-in sqlglot has a grammar for
        name = function_name(node)
    else:
        name = function_name(node)
        effect = sql_functions.risk_of(name) or "unknown"
        schema = function_schema(node)
        if schema.lower() not in BUILTIN_SCHEMAS and effect in ("pure", "write"):
            effect = "unknown"  # `evil.lower(x)`: a function of the user's own schema, named like a built-in
        if effect == "unknown" or name == "set_config":
            name = f"{schema}.{name}" if schema else name
    if name == "set_config":
        setting = constant(node.expressions[0]) if node.expressions else None
        if not isinstance(setting, str) or setting.lower() in ("role", "session_authorization"):
            judgement.raise_to(Risk.write, "privilege", note="set_config(role …) changes whose rights apply")
        else:
            judgement.raise_to(Risk.write, note=f"set_config({setting[:30]}) changes a setting")
    elif effect == "destructive":
        judgement.raise_to(Risk.destructive, note=f"{name}(…)")
    elif effect == "opaque":
        judgement.raise_to(Risk.unknown, note=f"{name}(…) runs SQL or touches files we cannot see")
    elif effect == "write":
        judgement.raise_to(Risk.write, note=f"{name}(…) changes server state")
    elif effect == "unknown":
        judgement.calls.append(name)  # judged once the target's own read-only functions are known


def function_schema(node: exp.Func) -> str:
    """`pg_catalog` of `pg_catalog.lower(x)`, `billing` of `FROM billing.close_month()`, else ''."""
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        return str(parent.this.sql())
    if isinstance(parent, exp.Table) and parent.this is node:
        return ".".join(str(part) for part in (parent.catalog, parent.db) if part)
    return ""


def judge_calls(judgement: StatementJudgement, read_only: frozenset[str]) -> None:
    """Calls to functions we do not know make the statement `unknown`, unless the target declares them."""
    unknown_calls = [name for name in judgement.calls if name.lower() not in read_only]
    if unknown_calls:
        shown = ", ".join(f"{name}()" for name in dict.fromkeys(unknown_calls))
        judgement.raise_to(
            Risk.unknown,
            note=f"calls {shorten(shown, 80)}: a function we do not know can change anything "
            "(declare it in the target's read_only_functions if it only reads)",
        )


def judge_create(node: exp.Create, judgement: StatementJudgement) -> None:
    kind = str(node.args.get("kind") or "").upper()
    name = table_name(node.this)
    if kind in OPAQUE_CREATES:
        judgement.raise_to(Risk.unknown, "schema", note=f"CREATE {kind} body is code we do not judge")
        return
    judgement.creates.append((kind, name.lower()))
    if node.args.get("replace") and kind == "TABLE":
        # CREATE OR REPLACE TABLE (Snowflake, BigQuery, Databricks) drops the old table's rows.
        judgement.raise_to(Risk.destructive, "replace", "schema", note=f"CREATE OR REPLACE TABLE {name} drops its rows")
    else:
        judgement.raise_to(Risk.write, "schema", note=f"CREATE {kind} {name}")


def judge_drop(node: exp.Drop, judgement: StatementJudgement) -> None:
    kind = str(node.args.get("kind") or "").upper()
    names = [table_name(t) for t in node.args.get("tables") or []] or [table_name(node.this)]
    names = [n for n in names if n]
    tags = {"irreversible"}
    if node.args.get("cascade"):
        tags.add("cascade")
    if kind in ("DATABASE", "SCHEMA"):
        tags.add("mass")
    if kind in PRIVILEGE_OBJECTS:
        tags.add("privilege")
    judgement.drops.extend((kind, n.lower()) for n in names)
    judgement.raise_to(Risk.destructive, *tags, note=f"DROP {kind} {', '.join(names)}".rstrip())


# --- always-true WHERE ------------------------------------------------------------------------------


def always_true(condition: exp.Expr) -> bool:
    return truth(condition) is True


def truth(node: exp.Expr) -> bool | None:
    """The constant truth of a condition when it does not depend on the row, else None."""
    if isinstance(node, exp.Paren):
        return truth(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Not):
        inner = truth(node.this)
        return None if inner is None else not inner
    if isinstance(node, exp.And):
        left, right = truth(node.left), truth(node.right)
        if left is False or right is False:
            return False
        return True if left is True and right is True else None
    if isinstance(node, exp.Or):
        left, right = truth(node.left), truth(node.right)
        if left is True or right is True or complementary(node.left, node.right):
            return True
        return False if left is False and right is False else None
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        negate = bool(node.args.get("negate"))
        if isinstance(node.this, exp.Null):
            return not negate  # NULL IS NULL
        value = constant(node.this)
        return None if value is None else negate  # 1 IS NULL is false, 1 IS NOT NULL true
    if isinstance(node, exp.Like):
        pattern = constant(node.expression)
        return True if isinstance(pattern, str) and pattern and set(pattern) == {"%"} else None
    if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)):
        return compare(node)
    if isinstance(node, exp.In):
        value = constant(node.this)
        options = [constant(e) for e in node.expressions]
        if value is not None and options and value in options:
            return True
        return None
    if isinstance(node, exp.Between):
        value, low, high = (
            constant(node.this),
            constant(node.args.get("low")),
            constant(node.args.get("high")),
        )
        if isinstance(value, float) and isinstance(low, float) and isinstance(high, float):
            return low <= value <= high
        return None
    if isinstance(node, exp.Exists):
        inner = node.this
        if isinstance(inner, exp.Select) and inner.args.get("from") is None and inner.args.get("where") is None:
            return True
        return None
    value = constant(node)
    if isinstance(value, float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("t", "true", "1", "y", "yes", "on")
    return None


def complementary(left: exp.Expr, right: exp.Expr) -> bool:
    """`p OR NOT p`, `x IS NULL OR x IS NOT NULL`: true for every row."""

    def strip(e: exp.Expr) -> exp.Expr:
        return strip(e.this) if isinstance(e, exp.Paren) else e

    left, right = strip(left), strip(right)
    if isinstance(left, exp.Is) and isinstance(right, exp.Is) and left.this == right.this:
        return bool(left.args.get("negate")) != bool(right.args.get("negate"))
    if isinstance(right, exp.Not) and strip(right.this) == left:
        return True
    return isinstance(left, exp.Not) and strip(left.this) == right


def compare(node: exp.Expr) -> bool | None:
    left, right = node.this, node.expression
    a, b = constant(left), constant(right)
    if a is None or b is None:
        same = left == right and not left.find(exp.Func, exp.Subquery, exp.Select)
        if same and isinstance(node, (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ)):
            return True  # x = x: every row where x is not null
        if same and isinstance(node, (exp.NEQ, exp.GT, exp.LT)):
            return False
        return None
    if type(a) is not type(b):
        return None
    if isinstance(node, (exp.EQ, exp.NullSafeEQ)):
        return a == b
    if isinstance(node, exp.NEQ):
        return a != b
    if isinstance(node, exp.GT):
        return a > b  # type: ignore[operator]
    if isinstance(node, exp.GTE):
        return a >= b  # type: ignore[operator]
    if isinstance(node, exp.LT):
        return a < b  # type: ignore[operator]
    return a <= b  # type: ignore[operator]


def constant(node: exp.Expr | None) -> float | str | None:
    """A literal's value (numbers as float), looking through casts and parentheses."""
    if isinstance(node, (exp.Paren, exp.Cast, exp.TryCast)):
        return constant(node.this)
    if isinstance(node, exp.Neg):
        inner = constant(node.this)
        return -inner if isinstance(inner, float) else None
    if isinstance(node, exp.Boolean):
        return 1.0 if node.this else 0.0
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        try:
            return float(node.this)
        except ValueError:
            return None
    return None


# --- the answer ---------------------------------------------------------------------------------------


def combine(judgements: list[StatementJudgement]) -> Classification:
    risk = Risk.highest([v.risk for v in judgements])
    tags: set[str] = set()
    for v in judgements:
        tags |= v.tags
    dropped: set[tuple[str, str]] = set()
    replaced: list[str] = []
    for v in judgements:
        if dropped & set(v.creates):
            tags.add("replace")
            replaced.extend(name for _, name in dropped & set(v.creates))
        dropped.update(v.drops)
    tables: list[str] = []
    for v in judgements:
        tables.extend(t for t in v.tables if t not in tables)
    details = {
        "statements": [{"type": v.type, "tables": v.tables, "risk": v.risk.value} for v in judgements],
        "tables": tables,
    }
    summary = summarize(judgements, risk)
    if replaced:
        summary = shorten(f"drops and recreates {', '.join(replaced)}: {summary}", 200)
    # Built without validation: every value is of its field's type here, and tags are sorted as its
    # validator would sort them (tests/test_classifiers.py checks the two agree).
    return built_classification(risk, tuple(sorted(tags)), summary, details, fields_set=CONSTRUCTOR_FIELDS)


def summarize(judgements: list[StatementJudgement], risk: Risk) -> str:
    def describe(v: StatementJudgement) -> str:
        if v.note:
            return v.note
        return f"{v.type.upper()} from {', '.join(v.tables)}" if v.tables else v.type.upper()

    if len(judgements) == 1:
        return shorten(describe(judgements[0]), 200)
    worst = [v for v in judgements if v.risk is risk]
    text = f"{len(judgements)} statements, riskiest: " + "; ".join(describe(v) for v in worst[:3])
    if len(worst) > 3:
        text += f"; and {len(worst) - 3} more"
    return shorten(text, 200)


def shorten(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
