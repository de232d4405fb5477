"""kubectl executor.

No Kubernetes cluster can exist on this machine, so these tests use a STAND-IN `kubectl`: a small
bash script (the only fake in the executor tests, allowed because the real thing cannot run here)
that records the argv and the environment it received and prints what a cluster would. The executor
finds it through `INTERLOCK_KUBECTL`, the documented way to choose the binary. What is tested is the
executor's side: the argv it builds (no shell), the kubeconfig and context it injects, the flags it
refuses, the environment it passes, the redaction and the deadline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from interlock.execute import Status, execute
from interlock.policy.schema import Target
from tests.execute_fixtures import action, assert_no_secret, target

CLUSTER_TOKEN = "kube-token-93bd7c21aa"
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters: [{{name: prod, cluster: {{server: "https://prod.example:6443"}}}}]
users: [{{name: bot, user: {{token: {CLUSTER_TOKEN}}}}}]
contexts: [{{name: prod-ctx, context: {{cluster: prod, user: bot}}}}]
current-context: prod-ctx
"""
STAND_IN = """#!/bin/bash
# Stand-in for kubectl (no cluster can exist on this machine): record what we were given.
printf '%s\\n' "$@" > "{record}/argv"
env > "{record}/env"
cp "$KUBECONFIG" "{record}/kubeconfig"
case "$*" in
  *wait-forever*) sleep 60 ;;
  *fail*) echo "error: the server doesn't have a resource type" >&2; exit 1 ;;
  *leak*) grep token "$KUBECONFIG" ;;
esac
echo "NAME READY STATUS"
"""


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Target, Path]:
    record = tmp_path / "record"
    record.mkdir()
    binary = tmp_path / "bin" / "kubectl"
    binary.parent.mkdir()
    binary.write_text(STAND_IN.format(record=record))
    binary.chmod(0o755)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    monkeypatch.setenv("INTERLOCK_KUBECTL", str(binary))
    monkeypatch.setenv("GATEWAY_ONLY_SETTING", "must not leak")
    chosen = target("kubectl", kubeconfig=f"file:{tmp_path / 'kubeconfig'}", context="prod-ctx", timeout=5)
    return chosen, record


@pytest.mark.parametrize(
    ("payload", "expected_words"),
    [
        ({"command": "kubectl get pods -n prod"}, ["get", "pods", "-n", "prod"]),
        ({"args": ["get", "pods"]}, ["get", "pods"]),
        ({"args": ["kubectl", "delete", "pod", "web-1"]}, ["delete", "pod", "web-1"]),
        (
            {"command": "kubectl exec web-1 -- sh -c 'echo $HOME; ls > /tmp/x'"},
            ["exec", "web-1", "--", "sh", "-c", "echo $HOME; ls > /tmp/x"],
        ),
        (
            {"command": "kubectl get pods; rm -rf /"},
            ["get", "pods;", "rm", "-rf", "/"],
        ),  # no shell: inert words
    ],
)
def test_argv_gets_the_target_kubeconfig_and_context(
    cluster: tuple[Target, Path], payload: dict[str, Any], expected_words: list[str]
) -> None:
    chosen, record = cluster
    result = execute(action("kubectl", payload), chosen)
    assert result.status is Status.succeeded, result.error
    argv = (record / "argv").read_text().splitlines()
    assert argv[0].startswith("--kubeconfig=/tmp/interlock-kubectl-") and argv[1] == "--context=prod-ctx"
    assert argv[2:] == expected_words
    assert (record / "kubeconfig").read_text() == KUBECONFIG
    assert not Path(argv[0].split("=", 1)[1]).exists()  # the private copy is gone


def test_kubectl_gets_only_the_controlled_environment(cluster: tuple[Target, Path]) -> None:
    chosen, record = cluster
    execute(action("kubectl", {"command": "kubectl get ns"}), chosen)
    env = dict(line.split("=", 1) for line in (record / "env").read_text().splitlines() if "=" in line)
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "GATEWAY_ONLY_SETTING" not in env and env["KUBECONFIG"].startswith("/tmp/interlock-kubectl-")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"command": "kubectl --context other get pods"}, "`--context` belongs to the target"),
        (
            {"command": "kubectl get pods --kubeconfig=/root/.kube/config"},
            "`--kubeconfig` belongs to the target",
        ),
        ({"args": ["get", "pods", "--token", "abc"]}, "`--token` belongs to the target"),
        ({"args": ["get", "pods", "-s", "https://evil:6443"]}, "`-s` belongs to the target"),
        ({"args": ["get", "pods", "--as=system:admin"]}, "`--as` belongs to the target"),
        ({"command": "ls -l"}, "must start with `kubectl`"),
        ({"command": "kubectl get 'pods"}, "cannot be read"),
        ({"command": "kubectl"}, "no subcommand"),
        ({"args": "get pods"}, "must be a list of strings"),
    ],
)
def test_refused_payloads(cluster: tuple[Target, Path], payload: dict[str, Any], message: str) -> None:
    chosen, record = cluster
    result = execute(action("kubectl", payload), chosen)
    assert result.status is Status.error
    assert result.error is not None and message in result.error
    assert not (record / "argv").exists()  # never ran


@pytest.mark.parametrize(
    ("command", "status", "exit_code"),
    [
        ("kubectl get pods leak", Status.succeeded, 0),
        ("kubectl get fail", Status.failed, 1),
    ],
)
def test_outcomes_and_token_redaction(
    cluster: tuple[Target, Path], command: str, status: Status, exit_code: int
) -> None:
    result = execute(action("kubectl", {"command": command}), cluster[0])
    assert (result.status, result.exit_code) == (status, exit_code)
    assert_no_secret(result, CLUSTER_TOKEN)


def test_a_hanging_kubectl_is_killed_at_the_deadline(cluster: tuple[Target, Path]) -> None:
    started = time.monotonic()
    result = execute(action("kubectl", {"command": "kubectl wait-forever"}), cluster[0], timeout=1)
    assert result.status is Status.timeout and time.monotonic() - started < 3


def test_a_missing_kubeconfig_names_the_reference(cluster: tuple[Target, Path]) -> None:
    chosen = cluster[0].model_copy(update={"kubeconfig": "file:/nonexistent/kubeconfig"})
    result = execute(action("kubectl", {"command": "kubectl get pods"}), chosen)
    assert result.status is Status.error
    assert result.error is not None and "'file:/nonexistent/kubeconfig'" in result.error
