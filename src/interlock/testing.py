"""Test support: a real `interlock serve` process on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from interlock.audit import AuditLog
from interlock.identity import create_token
from interlock.policy import load_policy
from interlock.store import open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, url: str, policy: Path, store_url: str, key_dir: Path, process: subprocess.Popen[bytes],
                 log: Path, verify: ssl.SSLContext | bool = True) -> None:
        self.url, self.policy, self.store_url, self.key_dir = url, policy, store_url, key_dir
        self.process, self.log, self.verify = process, log, verify

    def token(self, kind: str, name: str) -> str:
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
                        verify)
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
