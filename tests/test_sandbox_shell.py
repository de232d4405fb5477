"""shell rehearsals in real bubblewrap: the effects on the twin's working directory are listed and never
reach it, writes outside it are impossible, the network is off unless the twin allows it, the process
tree dies at the deadline. Both views: the kernel overlay (root) and the throwaway copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from interlock.execute.bwrap import overlay_available
from interlock.execute.result import Status
from interlock.model import Action, Kind
from interlock.policy.schema import Target
from interlock.sandbox.rehearse import rehearse
from tests.execute_fixtures import live_processes_with

MODES = ["copy", pytest.param("overlay", marks=pytest.mark.platform_impossible(
    reason="a kernel overlay mount needs root and overlayfs", when=not overlay_available()))]


def project(root: Path) -> Path:
    (root / "build" / "lib").mkdir(parents=True)
    (root / "build" / "app.o").write_bytes(b"\x7fELF object")
    (root / "build" / "lib" / "util.o").write_bytes(b"\x7fELF util")
    (root / "src").mkdir()
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


def shell(command: str) -> Action:
    return Action(kind=Kind.shell, environment="staging", target="twin", payload={"command": command})


def twin(workdir: Path, **fields: object) -> Target:
    return Target.model_validate({"environment": "staging", "kind": "shell", "workdir": str(workdir), **fields})


@pytest.mark.parametrize("mode", MODES)
def test_rm_rf_build_is_listed_and_the_real_directory_is_intact(tmp_path: Path, mode: str) -> None:
    workdir = project(tmp_path / "app")
    before = snapshot(workdir)
    done = rehearse(shell("rm -rf build/ && echo new > NOTES && chmod 700 run.sh && echo '// x' >> src/main.c"),
                    twin(workdir), shell_mode=mode)
    assert done.result.status is Status.succeeded, done.result
    files = done.effects["files"]
    assert files["deleted"] == ["build/app.o", "build/lib/util.o"]
    assert [f["path"] for f in files["created"]] == ["NOTES"]
    assert files["created"][0]["sha256"] == hashlib.sha256(b"new\n").hexdigest()
    changed = {f["path"]: f for f in files["changed"]}
    assert set(changed) == {"run.sh", "src/main.c"}
    assert changed["run.sh"]["mode"] == "0o700" and changed["run.sh"]["sha256"] == changed["run.sh"]["was_sha256"]
    assert changed["src/main.c"]["sha256"] != changed["src/main.c"]["was_sha256"]
    assert done.effects["isolation"] == f"bubblewrap ({mode})"
    assert "deleted 2" in done.summary and "created 1" in done.summary
    assert snapshot(workdir) == before  # the real directory is intact


@pytest.mark.parametrize("mode", MODES)
def test_writes_outside_the_working_directory_cannot_happen(tmp_path: Path, mode: str) -> None:
    workdir = project(tmp_path / "app")
    outside = tmp_path / "outside.txt"
    done = rehearse(shell(f"echo pwned > {outside}; echo pwned > /etc/interlock-pwned; "
                          "echo scratch > /tmp/ok && cat /tmp/ok"), twin(workdir), shell_mode=mode)
    assert not outside.exists()
    assert not Path("/etc/interlock-pwned").exists()
    assert "Read-only file system" in done.result.output
    assert "scratch" in done.result.output  # a fresh /tmp of its own works


def test_no_network_unless_the_twin_allows_it(tmp_path: Path) -> None:
    probe = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"  # the interfaces this process can use
    host = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    closed = rehearse(shell(probe), twin(tmp_path))
    assert closed.result.output.split() == ["lo"]
    assert closed.effects["network"] is False
    opened = rehearse(shell(probe), twin(tmp_path, network=True))
    assert opened.effects["network"] is True
    assert sorted(opened.result.output.split()) == host


def test_the_process_tree_is_killed_at_the_timeout(tmp_path: Path) -> None:
    marker = f"interlock-rehearsal-sleeper-{os.getpid()}"
    started = time.monotonic()
    done = rehearse(shell(f"(exec -a {marker} sleep 60) & (exec -a {marker} sleep 60) & wait"),
                    twin(tmp_path, timeout=1))
    assert done.result.status is Status.timeout
    assert "timed out" in (done.result.error or "")
    assert time.monotonic() - started < 15
    assert live_processes_with(marker) == []


def test_bubblewrap_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    done = rehearse(shell("touch x"), twin(tmp_path))
    assert done.result.status is Status.error
    assert "bubblewrap is not installed" in (done.result.error or "")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("mode", MODES)
def test_the_gateways_secrets_are_out_of_sight(tmp_path: Path, mode: str) -> None:
    """Only the programs, libraries and /etc are visible (read-only), minus the host's secrets: a key
    beside the gateway's store, /root and /etc/shadow cannot be read from a rehearsal."""
    workdir = project(tmp_path / "app")
    key = tmp_path / "keys" / "audit-signing.key"
    key.parent.mkdir()
    key.write_text("PRIVATE-KEY-MATERIAL")
    done = rehearse(shell(f"cat {key}; ls /root; cat /etc/shadow; ls /usr/bin/bash"), twin(workdir),
                    shell_mode=mode)
    assert "PRIVATE-KEY-MATERIAL" not in done.result.output
    assert "No such file or directory" in done.result.output
    assert "root:" not in done.result.output  # /etc/shadow: empty or unreadable inside
    assert "/usr/bin/bash" in done.result.output  # programs are there


@pytest.mark.parametrize("mode", MODES)
def test_a_directory_replaced_whole_is_read_the_same_in_both_views(tmp_path: Path, mode: str) -> None:
    """`rm -rf build && mkdir build && …`: an opaque directory in the overlay, plain differences in the copy."""
    workdir = project(tmp_path / "app")
    done = rehearse(shell("rm -rf build && mkdir -p build/new && echo x > build/app.o && echo y > build/new/z.o"),
                    twin(workdir), shell_mode=mode)
    files = done.effects["files"]
    assert files["deleted"] == ["build/lib/util.o"]
    assert [f["path"] for f in files["changed"]] == ["build/app.o"]
    assert [f["path"] for f in files["created"]] == ["build/new/z.o"]
