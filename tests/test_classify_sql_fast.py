"""The SQL classifier's shortcuts (issue 18.5: classifying unseen proposals faster) give the answers the long
way gives: the credential hint's quick test, the one walk over a tree that skips node types `judge_node`
does not test for, the readers kept per thread and dialect, the classification built without validation.
The whole-corpus comparison before/after is `python -m bench.bench_classify_unique --compare`."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from interlock.classify import ClassifyContext, classify
from interlock.classify import sql as sql_module
from interlock.classify.registry import CONSTRUCTOR_FIELDS
from interlock.model import Classification, Kind, Risk

CORPUS_SQL = [
    json.loads(line)["input"]
    for line in (Path(__file__).parent / "corpus" / "sql.jsonl").read_text().splitlines()
    if line and isinstance(json.loads(line).get("input"), str)
]


#: Text → whether CREDENTIAL_HINT finds one of its words: upper and mixed case, a word split by a space,
#: and non-ASCII text, where `(?i)` folds more than lower() does (`ſ` is an `s`, the Kelvin sign a `k`).
HINT_CASES = [
    ("SELECT * FROM pg_authid", True),
    ("select * from PG_AUTHID", True),
    ("SELECT passwd FROM Pg_Shadow", True),
    ("SELECT * FROM pg_auth id", False),
    ("SELECT 1", False),
    ("ſhow grants", True),
    ("SELECT * FROM pg_user_mapping\u212a", True),
    ("SELECT * FROM user$", True),
    ("SELECT name, password FROM SYS.USER$", True),
    ("SELECT * FROM user", False),
    ("SELECT * FROM ÿ WHERE x = 'mysql'", True),
    ("SELECT 'é'", False),
]


@pytest.mark.parametrize(("text", "found"), HINT_CASES)
def test_the_credential_hint_quick_test_finds_what_the_pattern_finds(text: str, found: bool) -> None:
    assert (sql_module.CREDENTIAL_HINT.search(text) is not None) is found
    assert sql_module.may_name_credentials(text) is found


def test_the_credential_hint_is_the_alternation_of_its_words() -> None:
    assert sql_module.CREDENTIAL_HINT.pattern == (
        r"(?i)pg_authid|pg_shadow|user_mapping|pg_subscription|subconninfo|sql_logins|user\$|mysql|show"
        r"|authentication_string"
    )
    assert all(word == word.lower() for word in sql_module.CREDENTIAL_HINT_WORDS)


_HINT_ALPHABET = "pgauthidshowmysqlUSERMAPINGSUBCONF_$ ſ\u212aİı"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_HINT_ALPHABET, max_size=30))
def test_the_credential_hint_quick_test_agrees_with_the_pattern_on_any_text(text: str) -> None:
    assert sql_module.may_name_credentials(text) is (sql_module.CREDENTIAL_HINT.search(text) is not None)


def test_judged_nodes_are_every_type_judge_node_tests_for() -> None:
    """judge_tree skips nodes of no type in JUDGED_NODES: a branch added to judge_node for another type
    must be added there too, or its nodes would never reach it."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(sql_module.judge_node)))
    tested = {
        getattr(exp, call.args[1].attr)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "isinstance"
        and isinstance(call.args[0], ast.Name) and call.args[0].id == "node" and isinstance(call.args[1], ast.Attribute)
    }
    assert tested == set(sql_module.JUDGED_NODES)


def test_the_statement_tables_are_found_in_the_order_of_the_tree() -> None:
    got = classify(Kind.sql, {"sql": "SELECT * FROM a JOIN (SELECT * FROM b JOIN c ON b.x = c.x) s ON a.id = s.id, d"})
    assert got.details["tables"] == ["a", "d", "b", "c"]


def test_the_classification_built_without_validation_is_the_one_validation_makes() -> None:
    for text in CORPUS_SQL:
        got = classify(Kind.sql, {"sql": text})
        validated = Classification.model_validate(got.model_dump())
        assert got == validated, text
        assert got.tags == tuple(sorted(set(got.tags))), text
        assert got.model_fields_set <= CONSTRUCTOR_FIELDS | {"kinds"}, text


def test_readers_are_kept_per_thread_and_give_the_same_answers_from_many_threads() -> None:
    alone = [classify(Kind.sql, {"sql": text}) for text in CORPUS_SQL]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: classify(Kind.sql, {"sql": text}), CORPUS_SQL * 2))
    assert together == alone * 2
    assert sql_module.sql_reader("postgres") is sql_module.sql_reader("postgres")
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(sql_module.sql_reader, "postgres").result() is not sql_module.sql_reader("postgres")


@pytest.mark.parametrize(
    ("dialect", "text", "risk"),
    [
        ("mysql", "DELETE FROM t WHERE 1", Risk.destructive),
        ("postgres", "DELETE FROM t WHERE 1", Risk.destructive),
        ("no such dialect", "SELECT 1", Risk.unknown),
        ("mysql", "SELECT * FROM `orders`", Risk.read),
        ("postgres", "SELECT * FROM `orders`", Risk.unknown),
    ],
)
def test_each_dialect_has_its_own_reader(dialect: str, text: str, risk: Risk) -> None:
    assert classify(Kind.sql, {"sql": text}, ClassifyContext(sql_dialect=dialect)).risk is risk
