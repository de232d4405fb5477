"""Test support: a real `interlock serve` process on a free loopback port (tests and benchmarks), and
`eventually`, the one poll-to-deadline helper (tests wait for a condition, never for a fixed time)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from interlock.audit import AuditLog
from interlock.identity import create_token
from interlock.policy import load_policy
from interlock.store import open_store

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 30.0, every: float = 0.05, what: str = "") -> T:
    """Call `check` until it returns something truthy (that value) or `timeout` seconds passed
    (AssertionError naming `what` and the last value). For conditions that another process or thread
    makes true: a test waits exactly as long as it must, and a generous deadline costs nothing."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or getattr(check, '__name__', 'the condition')} was still not true "
                                 f"after {timeout:g} s (last: {value!r})")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What `LiveServer.token` runs in a server's own code when it is another tree's (`code` given).
_TOKEN = (
    "import sys\n"
    "from pathlib import Path\n"
    "from interlock.audit import AuditLog\n"
    "from interlock.identity import create_token\n"
    "from interlock.policy import load_policy\n"
    "from interlock.store import open_store\n"
    "store = open_store(sys.argv[1])\n"
    "with AuditLog(store, key_dir=Path(sys.argv[2])) as audit:\n"
    "    print(create_token(store, sys.argv[3], sys.argv[4], None, audit, policy=load_policy(Path(sys.argv[5])))[1])\n"
    "store.close()\n"
)


class LiveServer:
    def __init__(self, url: str, policy: Path, store_url: str, key_dir: Path, process: subprocess.Popen[bytes],
                 log: Path, verify: ssl.SSLContext | bool = True, code: str | None = None) -> None:
        self.url, self.policy, self.store_url, self.key_dir = url, policy, store_url, key_dir
        self.process, self.log, self.verify = process, log, verify
        #: The PYTHONPATH of the server's code when it is not this process's (a benchmark's peer tree).
        self.code = code

    def token(self, kind: str, name: str) -> str:
        if self.code is not None:  # the server's schema is its code's: let that code write the token
            return subprocess.run([sys.executable, "-c", _TOKEN, self.store_url, str(self.key_dir), kind, name,
                                   str(self.policy)], env={**os.environ, "PYTHONPATH": self.code},
                                  capture_output=True, text=True, check=True).stdout.strip()
        store = open_store(self.store_url)
        try:
            with AuditLog(store, key_dir=self.key_dir) as audit:
                _, secret = create_token(store, kind, name, None, audit, policy=load_policy(self.policy))  # type: ignore[arg-type]
        finally:
            store.close()
        return secret

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=self.verify)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def decide_when_pending(self, match: str | Callable[[dict[str, Any]], bool], *tokens: str,
                            verdict: str = "approve", reason: str = "", timeout: float = 60.0) -> str:
        """Act as humans over the HTTP API: wait until an approval request whose action `match`es is
        pending (a string: found in the action's JSON), then each token in turn approves it (or the
        first denies it, with `reason`). The request's id."""
        picks = match if callable(match) else (lambda a: match in json.dumps(a["action"]))
        with self.client(tokens[0]) as http:
            def pending() -> list[dict[str, Any]]:
                return [a for a in http.get("/v1/approvals").json()["approvals"] if picks(a)]

            request_id = str(eventually(pending, timeout=timeout, every=0.1, what=f"a pending request for {match}")
                             [0]["id"])
        for token in tokens if verdict == "approve" else tokens[:1]:
            with self.client(token) as http:
                body = {"reason": reason} if verdict == "deny" else {}
                answer = http.post(f"/v1/approvals/{request_id}/{verdict}", json=body)
                assert answer.status_code == 200, answer.text
        return request_id


@contextmanager
def live_server(policy: Path, store_url: str, tmp_path: Path, env: dict[str, str] | None = None,
                workers: int = 1, *, allow_missing_secrets: bool = True,
                tls: tuple[Path, Path] | None = None) -> Iterator[LiveServer]:
    """`allow_missing_secrets`: the example policy names credentials (BILLING_DSN, kubeconfigs) that
    most tests never run against; those targets' actions are then denied, as in production.
    `tls`: (certificate, key) to serve HTTPS; readiness is checked trusting that certificate."""
    port = free_port()
    key_dir = tmp_path / "keys"
    log = tmp_path / f"serve-{port}.log"
    # The code the server runs, when `env` points it at another tree (a benchmark's peer, an older release):
    # that tree migrates its store and writes its tokens, as its schema may differ from this one's.
    code = (env or {}).get("PYTHONPATH")
    if code is not None:
        subprocess.run([sys.executable, "-c", "import sys; from interlock.store import open_store; "
                        "s = open_store(sys.argv[1]); s.migrate(); s.close()", store_url],
                       env={**os.environ, "PYTHONPATH": code}, check=True)
    else:
        store = open_store(store_url)
        store.migrate()  # so tokens can be created before the server starts
        store.close()
    cmd = [sys.executable, "-m", "interlock.cli", "serve", "--policy", str(policy), "--db", store_url,
           "--port", str(port), "--key-dir", str(key_dir), "--workers", str(workers),
           *(["--allow-missing-secrets"] if allow_missing_secrets else []),
           *(["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else [])]
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(tls[0])) if tls else True
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                                   env={**os.environ, **(env or {})})
    server = LiveServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", policy, store_url, key_dir, process, log,
                        verify, code)
    try:
        deadline = time.monotonic() + 120  # generous: CI machines run the suite on 2 busy cores
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"interlock serve exited with {process.returncode}:\n{server.logs()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"interlock serve did not become ready:\n{server.logs()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
