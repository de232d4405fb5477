"""kubectl: the kubectl binary with the target's kubeconfig and context, never through a shell.

Target fields: `kubeconfig` (credential reference; its content is written to a private temporary file
for the run), `context`, `env`, `timeout`, `max_output_bytes`. Payload: `{"command": "kubectl …"}`
(split like a shell would, but never run by one) or `{"args": [...]}` (with or without the leading
`kubectl`), read exactly as the kubectl classifier reads it. Flags that choose the cluster or the
identity (`--kubeconfig`, `--context`, `--token`, `--server`, `--as`, …) belong to the target and are
refused in the payload: an agent must not point the gateway's credentials somewhere else.

The binary is `INTERLOCK_KUBECTL` when set (a path), else `kubectl` on the executor's PATH.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from interlock.execute.process import BASE_PATH, run_process
from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.execute.shell import target_env, workdir
from interlock.model import Action
from interlock.policy.schema import Target

KUBECTL_ENV = "INTERLOCK_KUBECTL"
#: Flags that pick the cluster, the credentials or the identity: the target's to set, not the agent's.
TARGET_FLAGS = {
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "--token",
    "--server",
    "-s",
    "--as",
    "--as-group",
    "--as-uid",
    "--username",
    "--password",
    "--certificate-authority",
    "--client-certificate",
    "--client-key",
    "--insecure-skip-tls-verify",
    "--tls-server-name",
}
#: kubeconfig keys whose values are credentials (registered for redaction).
SECRET_KEYS = {"token", "client-key-data", "client-certificate-data", "password", "id-token", "refresh-token"}


def kubectl_binary() -> str:
    configured = os.environ.get(KUBECTL_ENV)
    found = configured or shutil.which("kubectl", path=BASE_PATH)
    if not found:
        raise ExecutionError(f"kubectl is not installed on {BASE_PATH}; install it or set {KUBECTL_ENV}")
    return found


def arguments(payload: dict[str, Any]) -> list[str]:
    """The words after `kubectl`, read the way the kubectl classifier reads them."""
    args = payload.get("args")
    if args is not None:
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ExecutionError("kubectl payload `args` must be a list of strings")
        words = list(args)
        if words and words[0].endswith(("kubectl", "oc", "kubectl.exe")):
            words = words[1:]
    else:
        command = payload.get("command")
        if not isinstance(command, str):
            raise ExecutionError('kubectl payload needs `command` ("kubectl get pods") or `args` (["get", "pods"])')
        try:
            split = shlex.split(command)
        except ValueError as exc:
            raise ExecutionError(f"kubectl command cannot be read: {exc}") from None
        if not split or split[0].rsplit("/", 1)[-1] != "kubectl":
            raise ExecutionError("kubectl command must start with `kubectl`")
        words = split[1:]
    if not words:
        raise ExecutionError("kubectl command has no subcommand")
    for word in words:
        if word == "--":
            break
        name = word.partition("=")[0]
        if name in TARGET_FLAGS or (name.startswith("-s") and not name.startswith("--") and len(name) > 2):
            raise ExecutionError(f"kubectl flag `{name}` belongs to the target, not to the action: remove it")
    return words


def _collect_secrets(node: Any, redactor: CredentialRedactor) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, str):
                redactor.add(value)
            else:
                _collect_secrets(value, redactor)
    elif isinstance(node, list):
        for item in node:
            _collect_secrets(item, redactor)


def write_kubeconfig(target: Target, redactor: CredentialRedactor, directory: str) -> str | None:
    if target.kubeconfig is None:
        return None
    content = redactor.resolve(target.kubeconfig, "target kubeconfig")
    # kubectl will say what is wrong with a broken kubeconfig; here we only look for its secrets.
    with contextlib.suppress(Exception):
        _collect_secrets(YAML(typ="safe").load(content), redactor)
    path = Path(directory) / "kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    return str(path)


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    assert target is not None
    words = arguments(action.payload)
    binary = kubectl_binary()
    cwd = workdir(target)
    with tempfile.TemporaryDirectory(prefix="interlock-kubectl-", ignore_cleanup_errors=True) as scratch:
        env = target_env(target, redactor, home=scratch)
        argv = [binary]
        kubeconfig = write_kubeconfig(target, redactor, scratch)
        if kubeconfig is not None:
            argv.append(f"--kubeconfig={kubeconfig}")
            env["KUBECONFIG"] = kubeconfig
        if target.context:
            argv.append(f"--context={target.context}")
        outcome = run_process(
            [*argv, *words],
            env=env,
            cwd=cwd or scratch,
            timeout=timeout,
            output=OutputCapture(target.max_output_bytes),
        )
    if outcome.timed_out:
        return make_result(
            Status.timeout,
            redactor,
            clock,
            outcome.output,
            exit_code=outcome.exit_code,
            error=f"timed out after {timeout:g}s; kubectl was killed",
        )
    ok = outcome.exit_code == 0
    return make_result(
        Status.succeeded if ok else Status.failed,
        redactor,
        clock,
        outcome.output,
        exit_code=outcome.exit_code,
        error=None if ok else f"kubectl exited with code {outcome.exit_code}",
    )
