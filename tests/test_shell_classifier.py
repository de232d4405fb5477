"""The shell classifier's structure: details, summaries, wrappers, limits, and hostile input.

The judgements themselves (input → risk, tags) are in tests/corpus/shell.jsonl.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.classify import classify
from interlock.classify.registry import ClassifyContext
from interlock.classify.shell import (
    MAX_DEPTH,
    classify_shell,
    decode_ansi_c,
    join_continuations,
    parser_bytes,
)
from interlock.model import Classification, Kind, Risk

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def shell(command: str) -> Classification:
    return classify(Kind.shell, {"command": command})


def programs(result: Classification) -> list[str]:
    return [entry["program"] for entry in result.details["commands"]]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"command": 42}, "not a string"),
        ({"command": None}, "null"),
        ({"command": ["rm", "-rf", "/"]}, "an argv list"),
        ({"cmd": "ls"}, "wrong field"),
        ({"command": "ls", "cwd": "/"}, "extra field"),
        ({}, "empty"),
    ],
)
def test_a_payload_that_is_not_exactly_one_command_string_is_unknown(payload: dict[str, Any], why: str) -> None:
    result = classify_shell(payload, ClassifyContext())
    assert result.risk is Risk.unknown, why
    assert result.details["commands"] == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("ls -la", ["ls"]),
        ("ls | grep x | wc -l", ["ls", "grep", "wc"]),
        ("ls; cat x && echo y || true", ["ls", "cat", "echo", "true"]),
        ("echo $(date) `id` <(uname)", ["echo", "date", "id", "uname"]),
        ("(cd /tmp && ls)", ["cd", "ls"]),
        ("sudo -u app timeout 5 env A=1 rm x", ["rm"]),
        ("for f in *; do cat $f; done", ["cat"]),
        ("# only a comment", []),
    ],
)
def test_every_command_in_the_line_is_listed(command: str, expected: list[str]) -> None:
    assert sorted(programs(shell(command))) == sorted(expected)


@pytest.mark.parametrize(
    ("command", "risks"),
    [
        ("ls; rm x", {"ls": "read", "rm": "destructive"}),
        ("echo hi > out.txt; git status", {"echo": "write", "git": "read"}),
        ("cat a | $CMD", {"cat": "read", "$CMD": "unknown"}),
    ],
)
def test_each_command_carries_its_own_risk(command: str, risks: dict[str, str]) -> None:
    entries = shell(command).details["commands"]
    assert {entry["program"]: entry["risk"] for entry in entries} == risks
    for entry in entries:
        assert set(entry) >= {"command", "program", "risk", "tags", "reason"}


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ("rm -rf /var/lib/postgres", "rm -rf /var/lib/postgres (recursive delete)"),
        ("sudo rm -rf /srv", "sudo rm -rf /srv (recursive delete)"),
        ("ls; rm -rf /srv", "ls; rm -rf /srv (recursive delete)"),
        ("echo hi > /etc/motd", "echo hi > /etc/motd (overwrites system path /etc/motd)"),
        ("git push --force", "git push --force (git push --force rewrites remote history)"),
        ("", "no command to run"),
    ],
)
def test_summary_is_the_line_and_the_worst_reason(command: str, summary: str) -> None:
    assert shell(command).summary == summary


@pytest.mark.parametrize(
    "command",
    [
        "psql <<EOF\nDROP TABLE users;\nEOF",
        "ls\n" * 40 + "rm -rf /srv",
        "bash -c 'rm -rf /srv\nls'",
        "x" * 5000,
    ],
)
def test_summary_is_one_short_line(command: str) -> None:
    summary = shell(command).summary
    assert "\n" not in summary
    assert len(summary) <= 200


@pytest.mark.parametrize(
    ("command", "paths", "mass"),
    [
        ("rm -rf /var/lib/postgres /srv/data", ["/var/lib/postgres", "/srv/data"], True),
        ("rm notes.txt", ["notes.txt"], False),
        ("chmod -R 755 /srv/app", ["/srv/app"], True),
        ("echo x >> app.log", ["app.log"], False),
        ("find /tmp -name '*.tmp' -delete", ["/tmp"], True),
    ],
)
def test_blast_radius_names_paths_and_mass(command: str, paths: list[str], mass: bool) -> None:
    result = shell(command)
    assert result.details["paths"] == paths
    assert ("mass" in result.tags) is mass
    assert (result.details.get("blast_radius") == "mass") is mass


@pytest.mark.parametrize(
    "command",
    [
        "sudo rm x",
        "sudo -u postgres -g postgres rm x",
        "doas rm x",
        "env -i A=1 B=2 rm x",
        "nice -n 5 ionice -c 3 rm x",
        "timeout --signal=KILL 30s rm x",
        "nohup rm x",
        "command rm x",
        "exec rm x",
        "time rm x",
        "stdbuf -o0 rm x",
        "watch -n 1 rm x",
        "/usr/bin/rm x",
        "\\rm x",
        "'rm' x",
        '"r"m x',
        "$'\\x72\\x6d' x",
        "sudo nice env timeout 1 /bin/rm x",
    ],
)
def test_wrappers_and_spellings_resolve_to_the_program(command: str) -> None:
    result = shell(command)
    assert result.risk is Risk.destructive
    assert "rm" in programs(result) or "watch" in programs(result)


def test_sudo_adds_privilege() -> None:
    assert "privilege" in shell("sudo ls").tags
    assert shell("sudo ls").risk is Risk.read


def _nest(command: str, levels: int) -> str:
    for _ in range(levels):
        command = "bash -c " + "'" + command.replace("'", "'\"'\"'") + "'"
    return command


@pytest.mark.parametrize(
    ("levels", "risk"),
    [
        (1, Risk.read),
        (MAX_DEPTH - 1, Risk.read),
        (MAX_DEPTH + 1, Risk.unknown),
        (MAX_DEPTH + 5, Risk.unknown),
    ],
)
def test_nested_shells_are_followed_up_to_the_recursion_limit(levels: int, risk: Risk) -> None:
    assert shell(_nest("ls -la", levels)).risk is risk


def test_beyond_the_recursion_limit_a_delete_is_not_read() -> None:
    assert shell(_nest("rm -rf /srv", MAX_DEPTH + 3)).risk is Risk.unknown


@pytest.mark.parametrize(
    ("command", "risk"),
    [
        ("x" * (1024 * 1024), Risk.unknown),
        ("ls; " * 250_000, Risk.unknown),
        ("ls; " * 20_000, Risk.unknown),
        ("$(" * 20_000 + "ls" + ")" * 20_000, Risk.unknown),
        ("echo " + "a" * 90_000, Risk.read),
        # tree-sitter-bash's error recovery is quadratic here: 17 s unbounded.
        ("a=(" * 20_000, Risk.unknown),
        ("eval " * 10_000 + "ls", Risk.unknown),
        ("bash -c " * 10_000 + "ls", Risk.unknown),
    ],
)
def test_huge_input_is_judged_within_a_second(command: str, risk: Risk) -> None:
    # CPU time: the bound is about work done, not about a busy CI machine. The judge stops at 0.5 s of it;
    # the bound leaves room for the work between two looks at the clock and for CPU time stretched by a
    # loaded machine's shared caches (1.14 s seen at load 16 before the judge looked inside long commands).
    started = time.process_time()
    result = shell(command)
    assert time.process_time() - started < 1.5
    assert result.risk is risk


@pytest.mark.parametrize(
    ("command", "parse_error"),
    [("ls (", True), ("rm -rf / (", True), ("ls", False), ("if true; then", True)],
)
def test_parse_errors_are_reported_and_never_read(command: str, parse_error: bool) -> None:
    result = shell(command)
    assert bool(result.details.get("parse_error")) is parse_error
    if parse_error:
        assert result.risk is not Risk.read


@pytest.mark.parametrize(
    "command",
    ["{\U000c2bae\x87", "echo {\U000c2bae}", "{\U00031860", "rm -rf {\U00031860} /srv", "echo \ud800 {"],
)
def test_input_that_crashes_tree_sitter_bash_is_judged_without_crashing(command: str) -> None:
    # tree-sitter/tree-sitter-bash#337: `{` then some non-BMP characters is a SIGSEGV on Linux.
    result = shell(command)
    assert result.risk is not Risk.read or "{" not in command or not _has_parse_error(command)


def test_a_parse_error_keeps_a_sure_destructive_judgement() -> None:
    assert shell("rm -rf / (").risk is Risk.destructive


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("\\x72m", "rm"),
        ("\\162\\155", "rm"),
        ("a\\nb", "a\nb"),
        ("\\u0041", "A"),
        ("it\\'s", "it's"),
        ("\\cA", "\x01"),
    ],
)
def test_ansi_c_strings_decode_like_bash(body: str, value: str) -> None:
    assert decode_ansi_c(body) == value


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("r\\\nm -rf /", "rm -rf /"),
        ("echo 'a\\\nb'", "echo 'a\\\nb'"),
        ("ls", "ls"),
        ("a \\\\\nb", "a \\\\\nb"),
    ],
)
def test_line_continuations_are_joined_outside_single_quotes(text: str, joined: str) -> None:
    assert join_continuations(text) == joined


def test_sql_goes_to_the_sql_classifier_with_the_client_dialect() -> None:
    entry = shell("psql -c 'DROP TABLE users'").details["commands"][0]
    assert entry["program"] == "psql"
    assert entry["risk"] == "destructive"


def test_the_same_command_gives_the_same_answer_cached_or_not() -> None:
    command = "git reset --hard HEAD~1"
    cached = classify_shell({"command": command}, ClassifyContext())
    fresh = classify_shell({"command": command}, ClassifyContext(sql_dialect="mysql"))
    assert (cached.risk, cached.tags, cached.summary) == (fresh.risk, fresh.tags, fresh.summary)


_SHELLISH = st.from_regex(
    r"(sudo |env A=1 |\\|'|\"|\$\(|`|\$'\\x7[0-9]|<<EOF\n|<\(|\)|;|&&|\|\||\||>|>>|2>&1| |rm|-rf|/|\*|ls|"
    r"bash -c |eval |xargs |find \. -exec |python3 -c |\{|\}|if |then |fi|\n|#|\$X|EOF)*",
    fullmatch=True,
)


def _has_parse_error(text: str) -> bool:
    return _PARSER.parse(parser_bytes(text)).root_node.has_error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), _SHELLISH))
def test_arbitrary_text_never_raises_and_a_parse_error_is_never_read(text: str) -> None:
    result = classify_shell({"command": text}, ClassifyContext())
    assert isinstance(result, Classification)
    assert "\n" not in result.summary
    if _has_parse_error(text):
        assert result.risk is not Risk.read


@pytest.mark.parametrize(
    ("command", "risk"),
    [
        ("cd /etc && echo x > passwd", Risk.destructive),
        ("cd /etc; cd ..; cd srv; echo x > out", Risk.write),
        ("cd ../../etc && echo x > hosts", Risk.destructive),
        ('cd "$DIR" && echo x > out.txt', Risk.unknown),
        ("cd - && echo x > out.txt", Risk.unknown),
        ("echo x > out.txt", Risk.write),
    ],
)
def test_relative_writes_follow_cd_in_the_same_line(command: str, risk: Risk) -> None:
    assert shell(command).risk is risk


def test_cd_in_one_classification_does_not_leak_into_the_next() -> None:
    shell("cd /etc")
    assert shell("echo x > passwd").risk is Risk.write


@pytest.mark.parametrize(
    ("command", "risk"),
    [
        # tree-sitter-bash parses a body that starts with a backslash as words of the redirect.
        ("bash <<'EOF'\n\\rm -rf /srv\nEOF", Risk.destructive),
        ("bash <<'EOF'\n\\ls\nEOF", Risk.unknown),
        ("bash <<EOF -c 'rm -rf /srv'\nls\nEOF", Risk.destructive),
        ("cat <<EOF\n`reboot`\nEOF", Risk.destructive),
        ("cat <<'EOF'\n`reboot`\nEOF", Risk.read),
        ("sh <<-EOF\n\tls -la\n\tEOF", Risk.read),
    ],
)
def test_here_docs_are_read_as_bash_reads_them(command: str, risk: Risk) -> None:
    assert shell(command).risk is risk


# --- differential check against bash itself -----------------------------------------------------
#
# Random lines built from nesting constructs run under real bash with PATH holding only logging
# stubs (`rm` here only appends to a log). Whenever bash really ran `rm`, the classifier must not
# have called the line read or write.

_RM_SPELLINGS = ["rm", "'rm'", '"r"m', "\\rm", "$'\\x72m'", "r''m", "command rm", "env rm"]
_HARMLESS = ["ls", "echo hi", "true", "printf '%s' a", "echo 'rm -rf /srv'", 'echo "rm x"']


def _random_line(rng: random.Random, depth: int = 0) -> str:
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(_RM_SPELLINGS) + " -rf /srv" if rng.random() < 0.5 else rng.choice(_HARMLESS)
    inner = _random_line(rng, depth + 1)
    escaped = inner.replace("\\", "\\\\").replace("`", "\\`")
    forms = [
        lambda: inner + rng.choice([" ; ", " && ", " || ", " | ", "\n"]) + _random_line(rng, depth + 1),
        lambda: "bash -c " + shlex.quote(inner),
        lambda: "echo $(" + inner + ")",
        lambda: "echo `" + escaped + "`",
        lambda: "{ " + inner + "; }",
        lambda: "(" + inner + ")",
        lambda: "if true; then " + inner + "; fi",
        lambda: "bash <<'EOF'\n" + inner + "\nEOF",
        lambda: "cat <<EOF\n$(" + inner + ")\nEOF",
        lambda: 'echo "${x:-`' + escaped + '`}"',
        lambda: "echo " + shlex.quote(inner) + " | bash",
        lambda: "eval " + shlex.quote(inner),
        lambda: "f() { " + inner + "; }; f",
        lambda: "x=$(" + inner + ")",
        lambda: "cat <(" + inner + ")",
        lambda: "bash <<< " + shlex.quote(inner),
        lambda: "sh -s <<EOF\n" + inner.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`") + "\nEOF",
        lambda: "echo x | xargs -I{} bash -c " + shlex.quote(inner),
        lambda: "case x in x) " + inner + ";; esac",
    ]
    return rng.choice(forms)()


def test_whenever_bash_runs_rm_the_classifier_does_not_say_read_or_write(tmp_path: Path) -> None:
    stubs, work, log = tmp_path / "bin", tmp_path / "work", tmp_path / "log"
    stubs.mkdir()
    work.mkdir()
    for name in ("rm", "ls", "cat"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stub.chmod(0o755)
    for name in ("bash", "env", "xargs"):
        (stubs / name).symlink_to(shutil.which(name) or f"/usr/bin/{name}")
    (stubs / "sh").symlink_to(shutil.which("bash") or "/usr/bin/bash")
    rng = random.Random(20261124)
    ran_rm = 0
    for _ in range(150):
        line = _random_line(rng)
        log.unlink(missing_ok=True)
        subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", line],
            cwd=work,
            env={"PATH": str(stubs)},
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        if log.exists() and any(entry.startswith("rm ") for entry in log.read_text().splitlines()):
            ran_rm += 1
            assert shell(line).risk.rank == Risk.destructive.rank, line
    assert ran_rm > 30  # the generator really exercises the check


def test_classifying_from_many_threads_gives_the_same_answers() -> None:
    commands = [f"rm -rf /srv/{i}; ls -la /tmp/{i}" for i in range(200)] + [f"git status # {i}" for i in range(200)]
    expected = {
        command: classify_shell({"command": command}, ClassifyContext(sql_dialect="mysql")) for command in commands
    }
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda c: classify_shell({"command": c}, ClassifyContext(sql_dialect="mysql")), commands)
        )
    assert [r.risk for r in results] == [expected[c].risk for c in commands]
    assert [r.summary for r in results] == [expected[c].summary for c in commands]


def test_the_fast_classification_is_the_one_model_construct_builds() -> None:
    from interlock.classify.shell import built_classification
    from interlock.model import Classification

    values = {"risk": Risk.write, "tags": ("mass", "network"), "summary": "s", "details": {"commands": []}, "kinds": ("sql",)}
    fast = built_classification(**values)  # type: ignore[arg-type]
    slow = Classification.model_construct(**values)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert Classification.model_validate(fast.model_dump()) == fast


def _both_ways(command: str) -> tuple[Any, Any]:
    import interlock.classify.shell as shell_module

    fast = shell_module._classification(shell_module.judge_text(command, ClassifyContext()), command)
    shell_module.FAST_PATH = False
    try:
        parsed = shell_module._classification(shell_module.judge_text(command, ClassifyContext()), command)
    finally:
        shell_module.FAST_PATH = True
    return fast, parsed


def test_plain_word_lines_skip_the_parser_with_the_same_answer_on_the_corpus() -> None:
    from interlock.classify.aws import catalog
    from interlock.classify.shell import simple_words

    catalog()  # load the IAM catalog first: its first load can outlast the judging deadline on a busy machine
    lines = [json.loads(line)["input"] for line in (Path(__file__).parent / "corpus" / "shell.jsonl").read_text().splitlines() if line]
    simple = [line for line in lines if simple_words(line) is not None]
    assert len(simple) > 150  # the fast path is the common case
    for line in simple:
        fast, parsed = _both_ways(line)
        assert fast == parsed, line


_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_./:,+=-@%", min_size=1, max_size=12)
_QUOTED = st.builds(
    lambda quote, body: quote + body + quote,
    st.sampled_from(["'", '"']),
    st.text(alphabet="abcdefghij0123 #;|&<>(){}*?[]@%~^-=./", max_size=12),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.sampled_from(["ls", "git", "rm", "cd", "kubectl", "cp", "mv", "sudo", "env", "tar", "chmod", "x", "."]),
        _PLAIN,
    ),
    st.lists(st.one_of(_PLAIN, _QUOTED), max_size=5),
)
def test_plain_word_lines_skip_the_parser_with_the_same_answer(program: str, args: list[str]) -> None:
    line = " ".join([program, *args])
    fast, parsed = _both_ways(line)
    assert fast == parsed, line


def test_plain_word_lines_with_a_comment_skip_the_parser_with_the_same_answer_on_the_corpus() -> None:
    from interlock.classify.aws import catalog
    from interlock.classify.shell import plain_command

    catalog()  # as above: the IAM catalog's first load outside the judging deadline
    lines = [json.loads(line)["input"] for line in (Path(__file__).parent / "corpus" / "shell.jsonl").read_text().splitlines() if line]
    commented = [f"{line}{comment}" for line in lines for comment in (" # why", "  #; rm -rf / $(reboot) `id` 'x")]
    fast_ones = [line for line in commented if plain_command(line) is not None]
    assert len(fast_ones) > 300  # the commented form of every plain line
    for line in commented:  # those that take the parser too: the answer must not depend on the path
        fast, parsed = _both_ways(line)
        assert fast == parsed, line


#: Lines around the commented fast path: (line, whether it skips the parser, risk). A `#` that does not
#: start a word, one inside quotes, or a comment holding a line break or a control character must not
#: take it: bash or tree-sitter could read what follows as commands.
COMMENT_FAST_PATH_CASES = [
    ("git status # why", True, Risk.read),
    ("rm -rf /srv/app # only a cleanup", True, Risk.destructive),
    ("ls #; rm -rf / $(reboot)", True, Risk.read),  # bash runs `ls` alone: the rest is the comment
    ("ls # x\nrm -rf /", False, Risk.destructive),
    ("ls # x\rrm -rf /", False, Risk.read),  # bash too reads the carriage return as part of the comment
    ("ls # x\u2028rm -rf /", False, Risk.read),
    ("ls a#; rm -rf /", False, Risk.destructive),
    ("ls '#' ; rm -rf /", False, Risk.destructive),
    ("ls \\# ; rm -rf /", False, Risk.destructive),
    ("ls\t# x", False, Risk.read),
]


@pytest.mark.parametrize(("line", "fast", "risk"), COMMENT_FAST_PATH_CASES)
def test_which_commented_lines_skip_the_parser(line: str, fast: bool, risk: Risk) -> None:
    from interlock.classify.shell import plain_command

    assert (plain_command(line) is not None) is fast
    fast_answer, parsed = _both_ways(line)
    assert fast_answer == parsed
    assert parsed.risk is risk


_COMMENT = st.text(alphabet="abc 0123#;|&<>(){}*?[]$`'\"\\!~^-=./\t\r\n\u2028é", max_size=16)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["ls", "git", "rm", "cd", "kubectl", "sudo", "env", "x"]),
    st.lists(st.one_of(_PLAIN, _QUOTED), max_size=4),
    st.sampled_from([" ", "  ", "", "\t"]),
    _COMMENT,
)
def test_plain_word_lines_with_a_comment_skip_the_parser_with_the_same_answer(
    program: str, args: list[str], gap: str, comment: str
) -> None:
    line = f"{' '.join([program, *args])}{gap}#{comment}"
    fast, parsed = _both_ways(line)
    assert fast == parsed, line
