"""A fleet of real local HTTP services, one process each (examples/fleet_service.py), for the rollout tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVICE = Path(__file__).resolve().parents[1] / "examples" / "fleet_service.py"


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def state(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/state", timeout=10).json()
        return body


@contextlib.contextmanager
def fleet(names: list[str], breaks_on: dict[str, str] | None = None) -> Iterator[dict[str, Service]]:
    """Start one process per name; `breaks_on` maps a name to the version that makes it unhealthy."""
    started: dict[str, Service] = {}
    try:
        for name in names:
            args = [sys.executable, str(SERVICE), "--version", "v1"]
            if breaks_on and name in breaks_on:
                args += ["--breaks-on", breaks_on[name]]
            process = subprocess.Popen(args, stdout=subprocess.PIPE)
            assert process.stdout is not None
            port = int(process.stdout.readline().decode().strip())
            started[name] = Service(name, f"http://127.0.0.1:{port}", process)
        yield started
    finally:
        for service in started.values():
            service.process.terminate()
        for service in started.values():
            service.process.wait(timeout=10)
