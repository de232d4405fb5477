"""One vocabulary through one options module (interlock/options.py, docs/cli.md).

Three tables: how a shared option resolves (command line × environment × old spelling → value or
error, with the warning), which option each command takes with which variable, and real commands
reaching the value they were given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from interlock import options
from interlock.cli import app
from interlock.options import DEFAULT_DB, Format

# --- how one shared option resolves ----------------------------------------------------------------

probe = typer.Typer()


@probe.command()
@options.shared
def show(db: options.Db = DEFAULT_DB, key_dir: options.KeyDir = None, gateway: options.Gateway = None,
         policy: options.PolicyFile = None, format: options.Fmt = Format.text, wait: options.Wait = 300.0) -> None:
    typer.echo(json.dumps({"db": db, "key_dir": str(options.key_dir_for(db, key_dir)), "gateway": gateway,
                           "format": format.value, "wait": wait,
                           "typed": sorted(n for n in ("gateway", "policy", "key_dir")
                                           if options.on_command_line(n))}))


def run_probe(args: list[str], env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(probe, args, env={**dict.fromkeys(UNSET), **(env or {})})  # type: ignore[dict-item]
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}, result.stderr


W = "http://127.0.0.1:8700"
CASES: list[tuple[list[str], dict[str, str], dict[str, Any], str]] = [
    # args, environment → values reached, warning on stderr ("" = none)
    ([], {}, {"db": DEFAULT_DB, "key_dir": ".interlock/keys", "gateway": None, "format": "text"}, ""),
    (["--db", "sqlite:////srv/i.db"], {}, {"db": "sqlite:////srv/i.db", "key_dir": "/srv/keys"}, ""),
    ([], {"INTERLOCK_DB": "sqlite:////srv/i.db"}, {"db": "sqlite:////srv/i.db", "key_dir": "/srv/keys"}, ""),
    (["--key-dir", "/k"], {"INTERLOCK_KEY_DIR": "/env"}, {"key_dir": "/k", "typed": ["key_dir"]}, ""),
    ([], {"INTERLOCK_KEY_DIR": "/env"}, {"key_dir": "/env", "typed": []}, ""),
    (["--gateway", W], {}, {"gateway": W, "typed": ["gateway"]}, ""),
    ([], {"INTERLOCK_URL": W}, {"gateway": W, "typed": []}, ""),
    (["--format", "json"], {}, {"format": "json"}, ""),
    (["--wait", "5"], {}, {"wait": 5.0}, ""),
    # old spellings: same value, a warning naming the new one
    (["--keys", "/old"], {}, {"key_dir": "/old", "typed": ["key_dir"]}, "--keys is deprecated and will be removed: use --key-dir"),
    ([], {"INTERLOCK_KEYS": "/old"}, {"key_dir": "/old", "typed": []}, "INTERLOCK_KEYS is deprecated and will be removed: set INTERLOCK_KEY_DIR"),
    ([], {"INTERLOCK_KEYS": "/same", "INTERLOCK_KEY_DIR": "/same"}, {"key_dir": "/same"}, "INTERLOCK_KEYS is deprecated"),
    (["--key-dir", "/new"], {"INTERLOCK_KEYS": "/old"}, {"key_dir": "/new"}, "INTERLOCK_KEYS is deprecated and ignored here"),
    (["--server", W], {}, {"gateway": W, "typed": ["gateway"]}, "--server is deprecated and will be removed: use --gateway"),
    ([], {"INTERLOCK_SERVER": W}, {"gateway": W, "typed": []}, "INTERLOCK_SERVER is deprecated and will be removed: set INTERLOCK_URL"),
    (["--json"], {}, {"format": "json"}, "--json is deprecated and will be removed: use --format json"),
    (["--json", "--format", "json"], {}, {"format": "json"}, "--json is deprecated"),
    (["--approval-timeout", "7"], {}, {"wait": 7.0}, "--approval-timeout is deprecated and will be removed: use --wait"),
]


@pytest.mark.parametrize(("args", "env", "expected", "warning"), CASES)
def test_a_shared_option_resolves(args: list[str], env: dict[str, str], expected: dict[str, Any],
                                  warning: str) -> None:
    code, reached, stderr = run_probe(args, env)
    assert code == 0, stderr
    assert {k: reached[k] for k in expected} == expected
    if warning:
        assert warning in stderr
    else:
        assert stderr == ""


@pytest.mark.parametrize(("args", "env", "error"), [
    (["--keys", "/a", "--key-dir", "/b"], {}, "--keys is the old name of --key-dir: give --key-dir only"),
    (["--server", W, "--gateway", "http://other"], {}, "--server is the old name of --gateway"),
    (["--json", "--format", "text"], {}, "--json is the old name of --format json"),
    (["--approval-timeout", "1", "--wait", "2"], {}, "--approval-timeout is the old name of --wait"),
    ([], {"INTERLOCK_KEYS": "/a", "INTERLOCK_KEY_DIR": "/b"}, "INTERLOCK_KEYS and INTERLOCK_KEY_DIR disagree"),
    ([], {"INTERLOCK_SERVER": W, "INTERLOCK_URL": "http://other"}, "INTERLOCK_SERVER and INTERLOCK_URL disagree"),
])
def test_an_old_and_a_new_spelling_that_disagree_are_an_error(args: list[str], env: dict[str, str],
                                                              error: str) -> None:
    code, _, stderr = run_probe(args, env)
    assert code == 2 and error in stderr


def test_old_spellings_are_hidden_from_help() -> None:
    shown = CliRunner().invoke(probe, ["--help"]).stdout
    assert "--key-dir" in shown and "INTERLOCK_KEY_DIR" in shown
    for old in ("--keys", "--server", "--json", "--approval-timeout", "INTERLOCK_KEYS", "INTERLOCK_SERVER"):
        assert old not in shown


# --- which option each command takes -----------------------------------------------------------------

NEW = {  # parameter → (flag, environment variable)
    "db": ("--db", "INTERLOCK_DB"),
    "key_dir": ("--key-dir", "INTERLOCK_KEY_DIR"),
    "gateway": ("--gateway", "INTERLOCK_URL"),
    "token": ("--token", "INTERLOCK_TOKEN"),
    "policy": ("--policy", "INTERLOCK_POLICY"),
    "format": ("--format", None),
    "wait": ("--wait", None),
}
OLD = {"--keys": "key_dir", "--server": "gateway", "--json": "format", "--approval-timeout": "wait"}

#: command → the shared options it takes (the contract docs/cli.md shows).
COMMANDS = {
    "token create": {"db", "key_dir", "policy", "format"},
    "token revoke": {"db", "key_dir"},
    "token list": {"db", "key_dir", "format"},
    "approvals list": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "approvals show": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "approvals approve": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "approvals deny": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "audit verify": {"db", "key_dir", "format"},
    "audit show": {"db", "key_dir", "format"},
    "audit export": {"db", "key_dir"},
    "audit proof": {"db", "key_dir"},
    "audit checkpoint": {"db", "key_dir"},
    "audit pubkey": {"db", "key_dir"},
    "policy replay": {"db", "key_dir", "policy", "format"},
    "serve": {"db", "key_dir", "policy"},
    "check": {"policy", "format"},
    "classify": {"policy", "format"},
    "exec": {"db", "key_dir", "gateway", "token", "policy", "wait"},
    "mcp-proxy": {"db", "key_dir", "gateway", "token", "policy", "wait"},
    "hook claude-code": {"db", "key_dir", "gateway", "token", "policy", "wait"},
    "hook codex": {"db", "key_dir", "gateway", "token", "policy", "wait"},
    "hook install": {"db", "key_dir", "gateway", "policy", "wait"},
    "rehearse": {"db", "key_dir", "gateway", "token", "policy", "wait", "format"},
    "freeze": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "thaw": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "guards status": {"db", "key_dir", "gateway", "token", "policy", "format"},
    "demo": {"format"},
}


def commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in sorted(group.list_commands(None)):
        command = group.get_command(None, name)
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from commands(command, path + " ")
        else:
            yield path, command


ALL = dict(commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "shared"), sorted(COMMANDS.items()))
def test_every_command_speaks_the_vocabulary(path: str, shared: set[str]) -> None:
    params = {p.name: p for p in ALL[path].params}
    taken = {name for name in NEW if name in params and not params[name].hidden}
    assert taken == shared
    for name in taken:
        flag, variable = NEW[name]
        assert params[name].opts == [flag], (path, name)
        assert params[name].envvar == variable, (path, name)
    for old, new in OLD.items():
        spelled = [p for p in params.values() if old in p.opts]
        assert all(p.hidden for p in spelled), (path, old)
        assert bool(spelled) == (new in shared), (path, old)


def test_any_command_spelling_a_shared_option_uses_the_shared_definition() -> None:
    """Commands added later included: `--db` without INTERLOCK_DB (or a visible `--keys`) is drift.
    Fix it by taking the option from interlock/options.py (and add the command to COMMANDS above)."""
    by_flag = {flag: (name, variable) for name, (flag, variable) in NEW.items()}
    for path, command in ALL.items():
        for param in command.params:
            for flag in param.opts:
                if flag in by_flag and not param.hidden:
                    assert param.envvar == by_flag[flag][1], f"{path} {flag}: use options.{by_flag[flag][0]}"
                if flag in OLD:
                    assert param.hidden, f"{path} {flag}: the old spelling must stay hidden"


# --- real commands reach the value ---------------------------------------------------------------------


UNSET = ("INTERLOCK_DB", "INTERLOCK_KEY_DIR", "INTERLOCK_URL", "INTERLOCK_TOKEN", "INTERLOCK_POLICY",
         "INTERLOCK_ENV", "INTERLOCK_AGENT", "INTERLOCK_SERVER", "INTERLOCK_KEYS")


def interlock(args: list[str], env: dict[str, str] | None = None) -> Any:
    """A real `interlock` command; only the variables given here are set."""
    return CliRunner().invoke(app, args, env={**dict.fromkeys(UNSET), **(env or {})})  # type: ignore[dict-item]


def test_keys_are_made_beside_the_store_not_in_the_current_directory(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "srv" / "interlock.db"
    store.parent.mkdir()
    result = interlock(["audit", "pubkey", "--db", f"sqlite:///{store}"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "srv" / "keys").is_dir() and not (tmp_path / ".interlock").exists()


@pytest.mark.parametrize(("args", "env", "folder", "warning"), [
    (["--key-dir", "{t}/a"], {}, "a", ""),
    ([], {"INTERLOCK_KEY_DIR": "{t}/b"}, "b", ""),
    (["--keys", "{t}/c"], {}, "c", "--keys is deprecated"),
    ([], {"INTERLOCK_KEYS": "{t}/d"}, "d", "INTERLOCK_KEYS is deprecated"),
])
def test_audit_pubkey_reaches_the_key_dir(tmp_path: Path, args: list[str], env: dict[str, str], folder: str,
                                          warning: str) -> None:
    given = [a.replace("{t}", str(tmp_path)) for a in args]
    result = interlock(["audit", "pubkey", "--db", f"sqlite:///{tmp_path}/i.db", *given],
                       env={k: v.replace("{t}", str(tmp_path)) for k, v in env.items()})
    assert result.exit_code == 0, result.output
    assert (tmp_path / folder).is_dir() and not (tmp_path / "keys").exists()
    assert warning in result.stderr


def test_token_reaches_the_store_named_by_interlock_db(tmp_path: Path) -> None:
    store = tmp_path / "env" / "i.db"
    store.parent.mkdir()
    result = interlock(["token", "create", "--agent", "kiro", "--format", "json"],
                       env={"INTERLOCK_DB": f"sqlite:///{store}"})
    assert result.exit_code == 0, result.output
    assert store.exists() and (tmp_path / "env" / "keys").is_dir()
    listed = interlock(["token", "list", "--json"], env={"INTERLOCK_DB": f"sqlite:///{store}"})
    assert [t["name"] for t in json.loads(listed.stdout)] == ["kiro"]
    assert "--json is deprecated" in listed.stderr


def test_serve_reads_interlock_db(tmp_path: Path) -> None:
    """`serve` used to ignore INTERLOCK_DB; a store it cannot open is now named, without a traceback."""
    policy = Path(__file__).parents[1] / "examples" / "policy.yaml"
    result = interlock(["serve", "--policy", str(policy), "--port", "0", "--allow-missing-secrets"],
                       env={"INTERLOCK_DB": "mysql://nowhere"})
    assert result.exit_code == 2
    assert "unsupported store URL 'mysql://nowhere'" in result.stderr and "INTERLOCK_DB" in result.stderr
    assert "Traceback" not in result.output


def test_audit_verify_witness_and_its_old_spelling(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/i.db"]
    assert interlock(["token", "create", "--agent", "kiro", *db]).exit_code == 0  # a log with an entry
    saved = interlock(["audit", "checkpoint", *db])
    assert saved.exit_code == 0, saved.output
    witness = tmp_path / "witness.json"
    witness.write_text(saved.stdout)
    now = interlock(["audit", "verify", *db, "--witness", str(witness), "--format", "json"])
    assert now.exit_code == 0 and json.loads(now.stdout)["ok"] is True and now.stderr == ""
    old = interlock(["audit", "verify", *db, "--since", str(witness), "--format", "json"])
    assert old.exit_code == 0 and json.loads(old.stdout)["ok"] is True
    assert "--since is deprecated and will be removed: use --witness" in old.stderr


def test_version_and_shell_completion() -> None:
    from interlock import __version__

    assert interlock(["--version"]).stdout.strip() == __version__
    assert interlock(["version"]).stdout.strip() == __version__
    shown = interlock(["--help"]).stdout
    assert "--install-completion" in shown and "--show-completion" in shown
    # typer's completion answers the shell's question; old spellings are never offered
    completed = CliRunner().invoke(app, [], prog_name="interlock", env={
        "_INTERLOCK_COMPLETE": "complete_bash", "COMP_WORDS": "interlock token list --", "COMP_CWORD": "3"})
    assert completed.stdout.split() == ["--db", "--key-dir", "--format", "--help"]


EXAMPLE = Path(__file__).parents[1] / "examples" / "policy.yaml"


@pytest.mark.parametrize(("args", "env", "warning"), [
    (["--gateway", "{url}"], {}, ""),
    ([], {"INTERLOCK_URL": "{url}"}, ""),
    (["--server", "{url}"], {}, "--server is deprecated and will be removed: use --gateway"),
    ([], {"INTERLOCK_SERVER": "{url}"}, "INTERLOCK_SERVER is deprecated and will be removed: set INTERLOCK_URL"),
])
def test_approvals_reach_the_gateway_by_every_spelling(args: list[str], env: dict[str, str], warning: str) -> None:
    from interlock.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the error names the URL reached
    result = interlock(["approvals", "list", *[a.replace("{url}", url) for a in args]],
                       env={"INTERLOCK_TOKEN": "ilk_h_unused", **{k: v.replace("{url}", url) for k, v in env.items()}})
    assert result.exit_code == 2 and f"cannot reach the server at {url}" in result.stderr
    assert warning in result.stderr


def test_approvals_choose_between_gateway_and_policy_one_way(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/i.db"]
    created = interlock(["token", "create", "--human", "bob", "--policy", str(EXAMPLE), "--format", "json", *db])
    secret = json.loads(created.stdout)["secret"]
    nowhere = "http://127.0.0.1:9"
    # --policy typed beats INTERLOCK_URL from the environment: in-process, on the store
    local = interlock(["approvals", "list", "--policy", str(EXAMPLE), *db],
                      env={"INTERLOCK_TOKEN": secret, "INTERLOCK_URL": nowhere})
    assert local.exit_code == 0 and "no pending approval requests" in local.stdout
    both = interlock(["approvals", "list", "--policy", str(EXAMPLE), "--gateway", nowhere, *db],
                     env={"INTERLOCK_TOKEN": secret})
    assert both.exit_code == 2 and "both --gateway and --policy are given on the command line" in both.stderr
    neither = interlock(["approvals", "list", *db], env={"INTERLOCK_TOKEN": secret})
    assert neither.exit_code == 2 and "no gateway: pass --gateway URL (INTERLOCK_URL" in neither.stderr
    no_token = interlock(["approvals", "list", "--policy", str(EXAMPLE), *db])
    assert no_token.exit_code == 2 and "no token: set INTERLOCK_TOKEN" in no_token.stderr


BASH_LS = json.dumps({"session_id": "s", "cwd": "/tmp", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                      "tool_input": {"command": "ls"}, "tool_use_id": "t"})
IN_PROCESS = ["--env", "sandbox", "--policy", str(EXAMPLE), "--agent", "kiro"]


@pytest.mark.parametrize(("command", "stdin"), [
    (["exec", *IN_PROCESS, "--", "true"], None),
    (["hook", "claude-code", *IN_PROCESS], BASH_LS),
    (["hook", "codex", *IN_PROCESS], BASH_LS),
])
def test_in_process_doors_reach_interlock_db_and_keep_keys_beside_it(tmp_path: Path, command: list[str],
                                                                      stdin: str | None) -> None:
    store = tmp_path / "store" / "i.db"
    result = CliRunner().invoke(app, command, input=stdin,
                                env={**dict.fromkeys(UNSET), "INTERLOCK_DB": f"sqlite:///{store}"})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.output
    assert store.exists() and (tmp_path / "store" / "keys").is_dir()


def test_the_lean_hook_reads_interlock_db_too(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    store = tmp_path / "store" / "i.db"
    env = {k: v for k, v in os.environ.items() if k not in UNSET} | {"INTERLOCK_DB": f"sqlite:///{store}"}
    done = subprocess.run([sys.executable, "-m", "interlock.integrations.hooks", "claude-code", *IN_PROCESS],
                          input=BASH_LS, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"permissionDecision": "allow"' in done.stdout
    assert store.exists() and (tmp_path / "store" / "keys").is_dir() and not (tmp_path / ".interlock").exists()


def test_freeze_and_guards_status_speak_both_spellings(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/i.db"]
    created = interlock(["token", "create", "--human", "bob", "--policy", str(EXAMPLE), "--format", "json", *db])
    env = {"INTERLOCK_TOKEN": json.loads(created.stdout)["secret"], "INTERLOCK_POLICY": str(EXAMPLE)}
    old = interlock(["freeze", "--reason", "incident 4711", *db, "--keys", str(tmp_path / "keys"), "--json"], env=env)
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout)["active"] is True
    assert "--keys is deprecated" in old.stderr and "--json is deprecated" in old.stderr
    now = interlock(["guards", "status", *db, "--format", "json"], env=env)
    assert now.exit_code == 0 and now.stderr == ""
    assert [f["reason"] for f in json.loads(now.stdout)["freezes"]] == ["incident 4711"]


def test_a_shared_command_is_still_a_plain_function() -> None:
    """Called from Python (not through typer) it runs with what it is given."""
    from interlock.vocabulary import key_dir_for

    @options.shared
    def plain(db: options.Db = DEFAULT_DB, key_dir: options.KeyDir = None) -> str:
        return str(key_dir_for(db, key_dir))

    assert plain(db="sqlite:////srv/i.db") == "/srv/keys"
