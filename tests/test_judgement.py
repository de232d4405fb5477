"""Judgement, round two (issue 13, and issue 11's SQL statement tags): what the corpus cannot say.

The corpus (tests/corpus/*.jsonl) holds the input → risk tables. Here: tags that must be ABSENT,
the policy's `read_only_functions` reaching the classifier through `interlock check`, the shared
privilege judge on its own, and the natural inputs of `interlock classify` and `--jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from interlock.classify import ClassifyContext, classify, privilege
from interlock.cli import app
from interlock.model import KNOWN_TAGS, Kind, Risk
from interlock.policy import PolicyError, load_policy_text

runner = CliRunner()


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


# --- SQL statement tags: present where the statement is, absent where it is only mentioned ----------

STATEMENT_TAGS = [
    # (sql, tags that must be there, statement tags that must NOT be there)
    ("DROP TABLE t", {"drop"}, {"delete", "create"}),
    ("EXPLAIN DELETE FROM t", set(), {"delete"}),
    ("SELECT 'DELETE FROM t; DROP TABLE t'", set(), {"delete", "drop"}),
    ("-- DROP TABLE t\nSELECT 1", set(), {"drop"}),
    ("SELECT * FROM deleted_rows", set(), {"delete"}),
    ("DROP TABLE t; CREATE TABLE t (id int)", {"drop", "create", "replace"}, set()),
    ("ALTER TABLE t DROP COLUMN c", {"alter"}, {"drop"}),
    ("INSERT INTO t SELECT * FROM u", {"insert"}, {"update", "delete"}),
    ("UPDATE t SET a = 1 WHERE id = 2", {"update"}, {"insert", "delete"}),
    ("CALL p()", {"call"}, set()),
]


@pytest.mark.parametrize(("sql", "present", "absent"), STATEMENT_TAGS, ids=[c[0][:40] for c in STATEMENT_TAGS])
def test_statement_tags(sql: str, present: set[str], absent: set[str]) -> None:
    got = set(classify(Kind.sql, {"sql": sql}).tags)
    assert present <= got, got
    assert not (absent & got), got


def test_statement_tags_are_known_tags() -> None:
    for tag in ("drop", "truncate", "alter", "grant", "revoke", "delete", "update", "insert", "create", "merge",
                "copy", "call"):
        assert tag in KNOWN_TAGS


# --- read_only_functions: declared in the policy, reaching the classifier --------------------------------

POLICY = """\
version: 1
humans:
  alice: {groups: [dba]}
agents:
  reporter: {owner: alice, roles: [reader]}
environments:
  production: {protected: true}
targets:
  billing-db:
    environment: production
    kind: sql
    dsn: env:BILLING_DSN
    read_only_functions: [Report_Totals, reporting.month_end]
roles:
  reader:
    production: {autonomous: read}
"""


@pytest.mark.parametrize(
    ("sql", "outcome"),
    [
        ("SELECT report_totals(2024)", "allow"),
        ("SELECT reporting.month_end('2024-11')", "allow"),
        ("SELECT month_end('2024-11')", "deny"),  # declared qualified, called bare: another could be found
        ("SELECT purge_invoices()", "deny"),
        ("SELECT count(*) FROM invoices", "allow"),
    ],
)
def test_read_only_functions_reach_the_classifier(tmp_path: Path, sql: str, outcome: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    _, out, err = run("check", "--policy", str(path), "--agent", "reporter", "--env", "production",
                         "--kind", "sql", "--target", "billing-db", "--format", "json", sql)
    assert json.loads(out)["decision"] == outcome, out + err


def test_without_the_target_the_function_is_unknown() -> None:
    assert classify(Kind.sql, {"sql": "SELECT report_totals(2024)"}).risk is Risk.unknown
    context = ClassifyContext(read_only_functions=frozenset({"report_totals"}))
    assert classify(Kind.sql, {"sql": "SELECT report_totals(2024)"}, context).risk is Risk.read


@pytest.mark.parametrize("name", ["drop table x; --", "a.b.c", "1abc", "", "report totals"])
def test_read_only_functions_refuses_what_is_not_a_function_name(name: str) -> None:
    text = POLICY.replace("[Report_Totals, reporting.month_end]", json.dumps([name]))
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    assert any("read_only_functions" in str(p) and "p.yaml:" in str(p) for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]


def test_unknown_function_summary_says_how_to_declare_it() -> None:
    got = classify(Kind.sql, {"sql": "SELECT purge_invoices()"})
    assert "purge_invoices()" in got.summary and "read_only_functions" in got.summary


# --- natural inputs: every documented form, through `interlock classify` and `--jsonl` -----------------

NATURAL_INPUTS = [
    # (kind, input as typed, expected risk)
    ("aws", "ec2:DescribeInstances", "read"),
    ("aws", "s3:GetObject", "read"),
    ("aws", "s3:DeleteBucket", "destructive"),
    ("aws", "aws ec2 describe-instances", "read"),
    ("aws", '{"operation": "ec2:TerminateInstances", "params": {"InstanceIds": ["i-1"]}}', "destructive"),
    ("aws", '{"command": "aws s3 ls"}', "read"),
    ("http", "GET https://api.example.com/v1/invoices", "read"),
    ("http", "get https://api.example.com/v1/invoices", "read"),
    ("http", "Delete https://api.example.com/v1/invoices/7", "destructive"),
    ("http", "  POST   https://api.example.com/v1/invoices  ", "write"),
    ("http", '{"method": "GET", "url": "https://api.example.com/"}', "read"),
    ("kubectl", "kubectl get pods", "read"),
    ("kubectl", '{"args": ["get", "pods"]}', "read"),
    ("kubectl", '{"args": ["kubectl", "delete", "ns", "prod"]}', "destructive"),
    ("kubectl", '{"command": "kubectl delete pod x"}', "destructive"),
    ("shell", '{"command": "ls -la"}', "read"),
    ("sql", '{"sql": "DROP TABLE t"}', "destructive"),
    ("mcp", '{"server": "fs", "tool": "read_file", "arguments": {"path": "x"}}', "read"),
    ("file", '{"operation": "read", "path": "README.md"}', "read"),
    ("terraform", '{"format_version": "1.2", "resource_changes": []}', "read"),
    ("terraform", '{"plan": {"format_version": "1.2", "resource_changes": []}}', "read"),
]


@pytest.mark.parametrize(("kind", "text", "risk"), NATURAL_INPUTS, ids=[f"{k}:{t[:40]}" for k, t, _ in NATURAL_INPUTS])
def test_natural_inputs_in_classify(kind: str, text: str, risk: str) -> None:
    code, out, err = run("classify", "--kind", kind, "--format", "json", text)
    assert code == 0, out + err
    assert json.loads(out)["risk"] == risk, out


def test_natural_inputs_in_jsonl_keep_order() -> None:
    lines = [{"kind": kind, "input": text} for kind, text, _ in NATURAL_INPUTS]
    # A JSON payload may also be given as an object, not as text.
    lines.append({"kind": "kubectl", "input": {"args": ["get", "pods"]}})
    lines.append({"kind": "aws", "input": {"operation": "iam:CreateAccessKey", "params": {"UserName": "bob"}}})
    code, out, _ = run("classify", "--jsonl", stdin="\n".join(json.dumps(line) for line in lines) + "\n")
    assert code == 0
    risks = [json.loads(line)["risk"] for line in out.splitlines()]
    assert risks == [risk for _, _, risk in NATURAL_INPUTS] + ["read", "destructive"]


UNACCEPTED = [
    # (kind, input in none of the kind's forms, a phrase of the accepted forms the answer must name)
    ("aws", "describe-instances", "IAM action"),
    ("aws", "ec2 describe-instances", "IAM action"),
    ("aws", '{"service": "ec2"}', '{"operation"'),
    ("http", "https://api.example.com/", "METHOD URL"),
    ("http", "GET", "METHOD URL"),
    ("http", "GET ftp://example.com/x", "METHOD URL"),
    ("http", "{not json", "METHOD URL"),
    ("mcp", "read_file README.md", '"tool"'),
    ("kubectl", "get pods", '{"args"'),
    ("kubectl", '{"args": "get pods"}', '{"args"'),
    ("terraform", "plan.tfplan", "terraform show -json"),
    ("file", "README.md", '"operation"'),
]


@pytest.mark.parametrize(("kind", "text", "phrase"), UNACCEPTED, ids=[f"{k}:{t[:30]}" for k, t, _ in UNACCEPTED])
def test_unaccepted_inputs_are_unknown_and_name_the_forms(kind: str, text: str, phrase: str) -> None:
    code, out, _ = run("classify", "--kind", kind, "--format", "json", text)
    answer = json.loads(out)
    assert code == 0 and answer["risk"] == "unknown"
    assert phrase in answer["summary"], answer["summary"]
    code, out, _ = run("classify", "--jsonl", stdin=json.dumps({"kind": kind, "input": text}) + "\n")
    answer = json.loads(out)
    assert answer["risk"] == "unknown" and phrase in answer["summary"], answer["summary"]


# --- the same escalation through every door -----------------------------------------------------------

DOORS = [
    # (kind, payload) — each grants administrator power, so each is destructive + privilege
    (Kind.sql, {"sql": "ALTER ROLE app SUPERUSER"}),
    (Kind.shell, {"command": "psql -c 'ALTER ROLE app SUPERUSER'"}),
    (Kind.shell, {"command": "bash -c \"psql -c 'GRANT postgres TO agent'\""}),
    (Kind.mcp, {"server": "db", "tool": "execute_sql", "arguments": {"sql": "GRANT ALL ON invoices TO agent"}}),
    (Kind.mcp, {"server": "db", "tool": "list_tables", "arguments": {"sql": "GRANT ALL ON invoices TO agent"}}),
    (Kind.aws, {"command": "aws iam create-access-key --user-name bob"}),
    (Kind.aws, {"operation": "iam:CreateAccessKey", "params": {"UserName": "bob"}}),
    (Kind.shell, {"command": "aws iam create-access-key --user-name bob"}),
    (Kind.shell, {"command": "sudo aws iam attach-user-policy --user-name me "
                             "--policy-arn arn:aws:iam::aws:policy/AdministratorAccess"}),
    (Kind.mcp, {"server": "term", "tool": "run_command",
                "arguments": {"command": "aws iam attach-user-policy --user-name me "
                                         "--policy-arn arn:aws:iam::aws:policy/AdministratorAccess"}}),
    (Kind.kubectl, {"command": "kubectl create clusterrolebinding x --clusterrole=cluster-admin --user=agent"}),
    (Kind.kubectl, {"args": ["create", "clusterrolebinding", "x", "--clusterrole", "cluster-admin", "--user=agent"]}),
    (Kind.shell, {"command": "kubectl create clusterrolebinding x --clusterrole=cluster-admin --user=agent"}),
    (Kind.mcp, {"server": "k8s", "tool": "kubectl_apply", "arguments": {"manifest": (
        "kind: ClusterRoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: x}\n"
        "roleRef: {kind: ClusterRole, name: cluster-admin, apiGroup: rbac.authorization.k8s.io}\nsubjects: []\n")}}),
]


@pytest.mark.parametrize(("kind", "payload"), DOORS, ids=[f"{k.value}:{json.dumps(p)[:50]}" for k, p in DOORS])
def test_escalation_is_destructive_through_every_door(kind: Kind, payload: dict[str, object]) -> None:
    got = classify(kind, payload)
    assert got.risk.effective is Risk.destructive, got.summary
    assert "privilege" in got.tags or got.risk is Risk.unknown, got


# --- the shared judge on its own ----------------------------------------------------------------------

ADMIN_NAMES = [
    ("cluster-admin", True), ("admin", True), ("db_owner", True), ("ACCOUNTADMIN", True), ("roles/owner", True),
    ("roles/bigquery.dataOwner", True), ("AdministratorAccess", True), ("rds_superuser", True), ("postgres", True),
    ("pg_execute_server_program", True), ("Admins", True), ("User Access Administrator", True),
    ("view", False), ("edit", False), ("analyst", False), ("db_datareader", False), ("roles/viewer", False),
    ("badminton", False), ("postgres_exporter", False), ("my-sa", False), ("ReadOnlyAccess", False), ("", False),
]


@pytest.mark.parametrize(("name", "admin"), ADMIN_NAMES, ids=[n or "empty" for n, _ in ADMIN_NAMES])
def test_admin_names(name: str, admin: bool) -> None:
    assert privilege.is_admin_name(name) is admin


IAM_DOCUMENTS = [
    ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, True),
    ({"Statement": {"Effect": "Allow", "Action": ["*:*"], "Resource": ["*"]}}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "IAM:*", "Resource": "*"}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "iam:Put*", "Resource": "*"}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "iam:?ttachRolePolicy", "Resource": "*"}]}, True),
    ({"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "NotResource": "arn:aws:iam::1:role/x"}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}, False),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}, False),
    ({"Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]}, False),
    ({"Statement": [{"Effect": "Allow", "Action": "iam:List*", "Resource": "*"}]}, False),
    ({"Statement": "not a list"}, False),
    ({}, False),
]


@pytest.mark.parametrize(("document", "admin"), IAM_DOCUMENTS, ids=[json.dumps(d)[:60] for d, _ in IAM_DOCUMENTS])
def test_iam_document_power(document: dict[str, object], admin: bool) -> None:
    assert (privilege.iam_document_power(document) is not None) is admin


def test_deep_manifest_does_not_break_the_judge() -> None:
    deep = '{"a": [' * 600 + '"x"' + "]}" * 600
    text = '{"kind": "ClusterRole", "rules": [{"verbs": ["*"], "resources": ["*"], "x": ' + deep + "}]}"
    got = classify(Kind.mcp, {"server": "k8s", "tool": "kubectl_apply", "arguments": {"manifest": text}})
    assert got.risk.effective is Risk.destructive, got.summary


@pytest.mark.parametrize("kind", ["aws", "http", "mcp", "kubectl", "terraform"])
def test_input_nested_600_levels_is_unknown_not_a_crash(kind: str) -> None:
    text = '{"a": ' * 600 + "1" + "}" * 600
    code, out, err = run("classify", "--kind", kind, "--format", "json", text)
    assert code == 0 and json.loads(out)["risk"] == "unknown", out + err
    code, out, err = run("classify", "--jsonl", stdin=json.dumps({"kind": kind, "input": text}) + "\n")
    assert code == 0 and json.loads(out)["risk"] == "unknown", out + err


# --- properties: escalation markers only raise; narrow grants stay write ---------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not privilege.is_admin_name(n) and n not in ("public", "all", "to", "on", "with", "grant", "in")
)
PRIVILEGES = st.lists(st.sampled_from(["SELECT", "INSERT", "UPDATE", "DELETE", "USAGE", "EXECUTE", "REFERENCES",
                                       "TRIGGER", "CONNECT", "TEMPORARY"]), min_size=1, max_size=3, unique=True)
MARKERS = [" WITH GRANT OPTION", ", PUBLIC"]


@settings(max_examples=150, deadline=None)
@given(privileges=PRIVILEGES, table=NAMES, role=NAMES, marker=st.sampled_from(MARKERS))
def test_narrow_grants_are_write_and_markers_make_them_destructive(
    privileges: list[str], table: str, role: str, marker: str
) -> None:
    grant = f"GRANT {', '.join(privileges)} ON {table} TO {role}"
    narrow = classify(Kind.sql, {"sql": grant})
    assert narrow.risk is Risk.write and {"privilege", "grant"} <= set(narrow.tags), (grant, narrow.summary)
    widened = grant + marker if marker.startswith(" WITH") else grant.replace(f" TO {role}", f" TO {role}{marker}")
    assert classify(Kind.sql, {"sql": widened}).risk is Risk.destructive, widened


STATEMENTS = st.fixed_dictionaries({
    "Effect": st.sampled_from(["Allow", "Deny"]),
    "Action": st.lists(st.sampled_from(["s3:GetObject", "ec2:Describe*", "iam:GetRole", "*", "iam:*", "iam:PassRole",
                                        "logs:PutLogEvents"]), min_size=1, max_size=3),
    "Resource": st.sampled_from(["*", "arn:aws:s3:::b/*", ["arn:aws:iam::1:role/x"]]),
})


@settings(max_examples=150, deadline=None)
@given(statements=st.lists(STATEMENTS, max_size=4), extra=STATEMENTS)
def test_adding_a_statement_never_lowers_a_documents_power(statements: list[dict[str, object]],
                                                          extra: dict[str, object]) -> None:
    before = privilege.iam_document_power({"Statement": statements}) is not None
    after = privilege.iam_document_power({"Statement": [*statements, extra]}) is not None
    assert after or not before
