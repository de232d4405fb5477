"""Load a policy file: YAML → validated `PolicyDocument`, or a list of located problems.

Nothing is partially loaded: any error (syntax, a misspelled key, an unknown reference, a cycle in
the promotion chain, a hard-floor violation) refuses the whole file, and every problem names its
`file:line:col`. ruamel.yaml is used (not PyYAML) because it keeps the line and column of every key
and refuses duplicate keys.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import regex
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from interlock.fingerprint import canonical_json
from interlock.guard.windows import overlap
from interlock.model import KNOWN_TAGS, Kind, Risk
from interlock.policy.schema import SECRET_REF_PATTERN, PolicyDocument
from interlock.sandbox import twins

UNSATISFIABLE = "unsatisfiable"

#: A policy is a human-written file; anything bigger is a mistake or an attack.
MAX_POLICY_BYTES = 1024 * 1024
#: YAML aliases can make a small file expand exponentially ("billion laughs"); count expanded nodes.
MAX_POLICY_NODES = 200_000
MAX_POLICY_DEPTH = 64

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, where it is, and (often) what to do."""

    file: str
    line: int
    col: int
    message: str
    severity: str = "error"  # error | unsatisfiable (an error for lint) | warning | hint

    def __str__(self) -> str:
        prefix = "" if self.severity in ("error", UNSATISFIABLE) else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"


class PolicyError(Exception):
    """The policy does not load; `problems` lists every located reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Locations:
    """Maps a path inside the document (('rules', 2, 'when')) to a 1-based line and column."""

    root: Any
    file: str

    def at(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        node, best = self.root, (1, 1)
        for i, part in enumerate(path):
            last = i == len(path) - 1
            try:
                if isinstance(node, CommentedMap) and part in node:
                    line, col = node.lc.key(part) if (key and last) else node.lc.value(part)
                    best = (line + 1, col + 1)
                    node = node[part]
                elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                    line, col = node.lc.item(part)
                    best = (line + 1, col + 1)
                    node = node[part]
                else:
                    break
            except (KeyError, AttributeError, TypeError, IndexError):
                break
        return best

    def problem(self, path: Path_, message: str, *, key: bool = False, severity: str = "error") -> Problem:
        line, col = self.at(path, key=key)
        return Problem(self.file, line, col, message, severity)


@dataclass(frozen=True)
class Policy:
    """A loaded, valid policy. `version` is the sha256 of its canonical JSON: comments and key order
    do not change it, any change of meaning does (and so invalidates pending approvals)."""

    doc: PolicyDocument
    version: str
    file: str
    locations: Locations = field(repr=False)
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def load_policy(path: str | Path) -> Policy:
    """Load and fully check a policy file; raises PolicyError with located problems."""
    file = str(path)
    try:
        raw = Path(path).read_bytes() if Path(path).stat().st_size <= MAX_POLICY_BYTES else None
    except OSError as exc:
        raise PolicyError([Problem(file, 1, 1, f"cannot read the policy: {exc.strerror or exc}")]) from exc
    if raw is None:
        raise PolicyError([Problem(file, 1, 1, f"policy file is larger than {MAX_POLICY_BYTES // 1024} KiB")])
    return load_policy_text(raw, file)


def load_policy_text(text: str | bytes, file: str = "<policy>") -> Policy:
    problems, policy = check_policy_text(text, file)
    errors = [p for p in problems if p.severity == "error"]
    if errors or policy is None:
        raise PolicyError(errors or [Problem(file, 1, 1, "policy did not load")])
    return policy


def check_policy_text(text: str | bytes, file: str = "<policy>") -> tuple[list[Problem], Policy | None]:
    """Every problem (errors and warnings) and the policy when there is no error. Used by lint."""
    if isinstance(text, str):
        text = text.encode()
    if len(text) > MAX_POLICY_BYTES:
        return [Problem(file, 1, 1, f"policy file is larger than {MAX_POLICY_BYTES // 1024} KiB")], None
    try:
        root = _parse_yaml(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return [Problem(file, 1, 1, f"policy is not UTF-8 text: {exc.reason} at byte {exc.start}")], None
    except _YamlProblem as exc:
        return [Problem(file, exc.line, exc.col, exc.message)], None
    locations = Locations(root, file)
    if not isinstance(root, CommentedMap):
        return [Problem(file, 1, 1, "a policy is a YAML mapping with at least `version: 1` and `environments`")], None
    try:
        plain = _plain(root, locations)
    except _YamlProblem as exc:
        return [Problem(file, exc.line, exc.col, exc.message)], None
    try:
        doc = PolicyDocument.model_validate(plain)
    except ValidationError as exc:
        return [_validation_problem(err, locations) for err in exc.errors()], None
    problems = list(_reference_problems(doc, locations)) + list(_floor_problems(doc, locations))
    problems += list(_warnings(doc, locations))
    if any(p.severity == "error" for p in problems):
        return problems, None
    version = hashlib.sha256(canonical_json(plain)).hexdigest()
    return problems, Policy(doc=doc, version=version, file=file, locations=locations)


# --- YAML ------------------------------------------------------------------------------------------


class _YamlProblem(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def _parse_yaml(text: str) -> Any:
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(str(s) for s in (exc.context, exc.problem) if s)
        if "duplicate key" in str(exc):
            what = str(exc.problem).split(" (")[0]
        raise _YamlProblem(line, col, f"YAML: {what.strip()}{_indentation_hint(str(exc), line)}") from exc
    except YAMLError as exc:
        raise _YamlProblem(1, 1, f"YAML: {exc}") from exc
    except RecursionError as exc:
        raise _YamlProblem(1, 1, "YAML nests too deeply") from exc


#: ruamel's wording for the errors a misplaced indentation produces.
_INDENTATION_SYMPTOMS = (
    "mapping values are not allowed here",
    "expected <block end>",
    "did not find expected key",
    "could not find expected ':'",
    "expected a comment or a line break",
)


def _indentation_hint(error: str, line: int) -> str:
    """What to do about the YAML errors people meet most: a key indented one space too far or too little."""
    if "cannot start any token" in error and "\\t" in error:
        return f"; YAML does not allow tabs for indentation: check the indentation of line {line}"
    if any(symptom in error for symptom in _INDENTATION_SYMPTOMS):
        return f"; check the indentation of line {line} (keys of one mapping start in the same column)"
    return ""


def _plain(root: Any, locations: Locations) -> Any:
    """Convert ruamel nodes to plain dicts/lists, counting expanded nodes so alias bombs stop early."""
    budget = [MAX_POLICY_NODES]

    def walk(node: Any, path: Path_, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            line, col = locations.at(path)
            raise _YamlProblem(line, col, f"policy expands to more than {MAX_POLICY_NODES} values "
                               "(YAML aliases repeated too often?)")
        if depth > MAX_POLICY_DEPTH:
            line, col = locations.at(path)
            raise _YamlProblem(line, col, f"policy nests deeper than {MAX_POLICY_DEPTH} levels")
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if not isinstance(k, str):
                    line, col = locations.at((*path, k), key=True)
                    raise _YamlProblem(line, col, f"keys must be text, got {k!r}")
                out[k] = walk(v, (*path, k), depth + 1)
            return out
        if isinstance(node, list):
            return [walk(v, (*path, i), depth + 1) for i, v in enumerate(node)]
        if isinstance(node, str):
            return str(node)  # drop ruamel's scalar string subclasses
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        line, col = locations.at(path)
        raise _YamlProblem(line, col, f"unsupported YAML value of type {type(node).__name__}")

    return walk(root, (), 0)


# --- schema errors ---------------------------------------------------------------------------------


def _validation_problem(err: Any, locations: Locations) -> Problem:
    path: Path_ = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = ".".join(str(p) for p in path) or "policy"
    if err["type"] == "extra_forbidden":
        bad = str(path[-1])
        allowed = _allowed_keys(path[:-1])
        hint = difflib.get_close_matches(bad, allowed, n=1, cutoff=0.6)
        message = f"unknown key {bad!r}" + (f": did you mean {hint[0]!r}?" if hint else "")
        if allowed and not hint:
            message += f" (expected one of: {', '.join(sorted(allowed))})"
        return locations.problem(path, message, key=True)
    if err["type"] == "missing":
        return locations.problem(path[:-1], f"{where}: required key {str(path[-1])!r} is missing")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch" and str(err.get("ctx", {}).get("pattern", "")) == SECRET_REF_PATTERN:
        return locations.problem(path, f"{where}: {_literal_secret_message(str(err.get('input')))}")
    if err["type"] == "string_pattern_mismatch":
        msg = f"{err.get('input')!r} is not a valid name or reference here ({msg})"
    if err["type"] == "enum" and isinstance(err.get("input"), str):
        allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        hint = difflib.get_close_matches(err["input"], allowed, n=1, cutoff=0.6)
        msg = f"{err['input']!r} is not one of {', '.join(allowed)}" + (f": did you mean {hint[0]!r}?" if hint else "")
    return locations.problem(path, f"{where}: {msg}")


def mask_secret(value: str) -> str:
    """`value` with its password (URL userinfo or libpq `password=`) replaced by ***; anything else
    that is not plainly a URL without credentials becomes *** whole. Never echo a secret in an error."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "***"
    if parts.scheme and parts.netloc:
        if parts.password is None:
            return f"{parts.scheme}://{parts.hostname or ''}/***" if parts.path or parts.query else value
        user = f"{parts.username}:" if parts.username else ":"
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"{user}***@{host}", parts.path, "", ""))
    if re.search(r"\bpassword\s*=", value):
        return re.sub(r"(\bpassword\s*=\s*)('[^']*'|\S+)", r"\1***", value)
    return "***"


def _literal_secret_message(value: str) -> str:
    """A credential written where its reference belongs: say so, what to write instead, and never the value."""
    stripped = value.strip()
    env = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", stripped)
    if env:
        return f"write the environment variable as a reference: env:{env.group(1)}"
    if stripped.startswith("/") and "\n" not in stripped:
        return f"write a file as a reference: file:{stripped}"
    return (f"{mask_secret(stripped)!r} looks like a credential written into the policy; a policy holds only "
            "where to find one: put it in an environment variable or a file readable by the gateway and write "
            "env:NAME or file:/path here (then rotate it: it has been in the file)")


def _allowed_keys(path: Path_) -> list[str]:
    """The keys the schema accepts at `path`, for "did you mean"."""
    tp: Any = PolicyDocument
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or name): f for name, f in tp.model_fields.items()}
            if part not in fields:
                return []
            tp = fields[str(part)].annotation
        elif typing.get_origin(tp) in (dict, tuple, list):
            args = typing.get_args(tp)
            tp = args[-1] if typing.get_origin(tp) is dict else args[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


# --- references ------------------------------------------------------------------------------------


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"unknown {kind} {name!r}" + (f": did you mean {hint[0]!r}?" if hint else "")


def _reference_problems(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    envs, agents, roles, targets = doc.environments, doc.agents, doc.roles, doc.targets
    groups = {g for h in doc.humans.values() for g in h.groups}

    for name, agent in agents.items():
        if agent.owner not in doc.humans:
            yield loc.problem(("agents", name, "owner"), _unknown("human", agent.owner, doc.humans))
        for i, role in enumerate(agent.roles):
            if role not in roles:
                yield loc.problem(("agents", name, "roles", i), _unknown("role", role, roles))
    for name, env in envs.items():
        if env.promotes_to is not None and env.promotes_to not in envs:
            yield loc.problem(("environments", name, "promotes_to"), _unknown("environment", env.promotes_to, envs))
    yield from _cycle_problems(doc, loc)
    for name, target in targets.items():
        if target.environment not in envs:
            yield loc.problem(("targets", name, "environment"), _unknown("environment", target.environment, envs))
    from interlock.rollout.groups import problems as group_problems

    for problem in group_problems(doc):
        yield loc.problem(problem.path, str(problem))
    yield from _urls_with_passwords(doc, loc)
    yield from _twin_problems(doc, loc)
    for role, grants in roles.items():
        for env_name, grant in grants.items():
            if env_name != "*" and env_name not in envs:
                yield loc.problem(("roles", role, env_name), _unknown("environment", env_name, envs), key=True)
            for risk, spec in grant.approve.items():
                yield from _group_problems(spec.from_groups, spec.at_least, groups, loc,
                                           ("roles", role, env_name, "approve", risk))

    seen: dict[str, int] = {}
    for i, rule in enumerate(doc.rules):
        base: Path_ = ("rules", i)
        if rule.id in seen:
            yield loc.problem((*base, "id"), f"duplicate rule id {rule.id!r} (first at rules[{seen[rule.id]}])")
        seen.setdefault(rule.id, i)
        for field_name, known, kind in (("agent", agents, "agent"), ("role", roles, "role"),
                                        ("environment", envs, "environment"), ("target", targets, "target")):
            values = getattr(rule.when, field_name)
            for j, value in enumerate(values):
                if value not in known:
                    path = (*base, "when", field_name, j) if _is_seq(loc, (*base, "when", field_name)) \
                        else (*base, "when", field_name)
                    yield loc.problem(path, _unknown(kind, value, known))
        for j, pattern in enumerate(rule.when.input):
            try:
                regex.compile(pattern)
            except regex.error as exc:
                yield loc.problem((*base, "when", "input", j), f"input pattern `{pattern}` is not a valid "
                                  f"regular expression: {exc}")
        if rule.sandbox is not None and rule.sandbox not in envs:
            yield loc.problem((*base, "sandbox"), _unknown("environment", rule.sandbox, envs))
        if rule.effect == "sandbox" and rule.sandbox is None:
            for env_name in _rule_envs(doc, rule):
                if _predecessor(doc, env_name) is None:
                    yield loc.problem((*base, "effect"), f"rule {rule.id!r} asks to run in a sandbox first, but "
                                      f"no environment promotes_to {env_name!r}: add `sandbox: ENV` to the rule")
                    break
        if rule.approvals is not None:
            yield from _group_problems(rule.approvals.from_groups, rule.approvals.at_least, groups, loc,
                                       (*base, "approvals"))

    yield from _guard_problems(doc, loc, groups)

    for i, test in enumerate(doc.tests):
        base = ("tests", i)
        if test.at is not None and _test_time(test.at) is None:
            yield loc.problem((*base, "at"), f"at {test.at!r} is not a time: write RFC 3339 with a zone, "
                              "e.g. '2026-07-18T10:00:00Z'")
        if test.agent not in agents:
            yield loc.problem((*base, "agent"), _unknown("agent", test.agent, agents))
        if test.env not in envs:
            yield loc.problem((*base, "env"), _unknown("environment", test.env, envs))
        if test.target is not None and test.target not in targets:
            yield loc.problem((*base, "target"), _unknown("target", test.target, targets))


def _twin_problems(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    """Twins (docs/sandbox.md): same kind, an earlier and unprotected environment, no cycle; and every
    target a `sandbox` rule can reach has a twin in the environment the rule sends it to."""
    envs, targets = doc.environments, doc.targets
    in_cycle: set[str] = set()
    for name, target in targets.items():
        if target.strategy != "rollback" and target.kind.value != "sql":
            yield loc.problem(("targets", name, "strategy"), f"`strategy` only applies to sql twins; target {name!r} "
                              f"takes {target.kind.value} actions", severity="warning")
        if target.network and target.kind.value != "shell":
            yield loc.problem(("targets", name, "network"), f"`network` only applies to shell twins; target {name!r} "
                              f"takes {target.kind.value} actions", severity="warning")
        if target.twin is None:
            continue
        path: Path_ = ("targets", name, "twin")
        twin = targets.get(target.twin)
        if twin is None:
            yield loc.problem(path, _unknown("target", target.twin, targets))
            continue
        if target.twin == name or name in twins.chain(doc, target.twin):
            cycle = [name, *twins.chain(doc, name)]
            if not in_cycle & set(cycle):
                yield loc.problem(path, f"twin chain has a cycle: {' -> '.join([*cycle, name])}")
            in_cycle |= set(cycle)
            continue
        if twin.kind is not target.kind:
            yield loc.problem(path, f"twin {target.twin!r} takes {twin.kind.value} actions, target {name!r} takes "
                              f"{target.kind.value}: a rehearsal runs the same action, so name a {target.kind.value} "
                              "target")
        if twin.environment in envs and envs[twin.environment].protected:
            yield loc.problem(path, f"twin {target.twin!r} is in protected environment {twin.environment!r}: "
                              "a rehearsal must never touch a production-like environment")
        elif target.environment in envs and twin.environment in envs and \
                not twins.precedes(doc, twin.environment, target.environment):
            yield loc.problem(path, f"twin {target.twin!r} is in {twin.environment!r}, which does not come before "
                              f"{target.environment!r} in the promotion chain: set `promotes_to` so that "
                              f"{twin.environment} leads to {target.environment}, or name a twin in an earlier "
                              "environment")
    for i, rule in enumerate(doc.rules):
        if rule.effect != "sandbox":
            continue
        for env_name in _rule_envs(doc, rule):
            first = rule.sandbox or _predecessor(doc, env_name)
            if first is None:
                continue
            for name, target in targets.items():
                if target.environment != env_name or (rule.when.target and name not in rule.when.target) or \
                        (rule.when.kind and target.kind not in rule.when.kind):
                    continue
                if twins.twin_in(doc, name, first) is None:
                    yield loc.problem(("rules", i, "effect"),
                                      f"rule {rule.id!r} sends actions on target {name!r} to {first!r} first, but "
                                      f"{name!r} has no twin there: add `twin: NAME` to targets.{name} (a "
                                      f"{target.kind.value} target in {first})")


def _test_time(text: str) -> datetime | None:
    """A policy test's `at`: RFC 3339 with a zone (a naive time would depend on the machine)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _guard_problems(doc: PolicyDocument, loc: Locations, groups: set[str]) -> Iterator[Problem]:
    guards = doc.guards
    base: Path_ = ("guards",)
    for j, group in enumerate(guards.thaw_by):
        if group not in groups:
            yield loc.problem((*base, "thaw_by", j), _unknown("group", group, groups) + " (no human is in it)")
    scopes = (("environments", doc.environments, "environment"), ("targets", doc.targets, "target"),
              ("agents", doc.agents, "agent"))
    for i, freeze in enumerate(guards.freezes):
        here = (*base, "freezes", i)
        for field_name, known, kind in scopes:
            for j, value in enumerate(getattr(freeze, field_name)):
                if value not in known:
                    yield loc.problem((*here, field_name, j), _unknown(kind, value, known))
        if freeze.approvers is not None:
            yield from _group_problems(freeze.approvers.from_groups, freeze.approvers.at_least, groups, loc,
                                       (*here, "approvers"))
        for k, other in enumerate(guards.freezes[:i]):
            if not all(not getattr(freeze, f) or not getattr(other, f)
                       or set(getattr(freeze, f)) & set(getattr(other, f)) for f, _, _ in scopes):
                continue  # different scopes never overlap
            for mine in freeze.window:
                for theirs in other.window:
                    moment = overlap(mine, theirs)
                    if moment is not None:
                        yield loc.problem((*here, "window"), f"freeze overlaps guards.freezes[{k}] "
                                          f"({theirs.describe()}) at {moment.isoformat()}: which approvers apply "
                                          "would be ambiguous; merge them into one freeze or split their scopes")
                        break
                else:
                    continue
                break
    hours = guards.anomalies.working_hours
    if hours is not None:
        for agent in hours.agents:
            if agent not in doc.agents:
                yield loc.problem((*base, "anomalies", "working_hours", "agents", agent),
                                  _unknown("agent", agent, doc.agents), key=True)
    first = guards.anomalies.first_action
    if first is not None:
        for j, env in enumerate(first.environments):
            if env not in doc.environments:
                yield loc.problem((*base, "anomalies", "first_action", "environments", j),
                                  _unknown("environment", env, doc.environments))


def _urls_with_passwords(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    """A URL field is not a credential reference, so a password written in it would be a secret in the
    policy: refused, shown masked."""
    urls: list[tuple[Path_, str | None]] = []
    for name, target in doc.targets.items():
        urls.append((("targets", name, "url"), target.url))
        if target.aws is not None:
            urls.append((("targets", name, "aws", "endpoint_url"), target.aws.endpoint_url))
    urls += [(("notify", i, "url"), hook.url) for i, hook in enumerate(doc.notify)]
    for path, url in urls:
        try:
            password = urlsplit(url).password if url else None
        except ValueError:
            password = None
        if password:
            where = ".".join(str(p) for p in path)
            yield loc.problem(path, f"{where}: {mask_secret(url or '')!r} carries a password; a policy holds no "
                              "secret: drop it from the URL and send it as a header from a reference "
                              "(headers: {Authorization: env:NAME})")


def _is_seq(loc: Locations, path: Path_) -> bool:
    node = loc.root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, list)


def _group_problems(from_groups: Iterable[str], at_least: dict[str, int], groups: set[str],
                    loc: Locations, path: Path_) -> Iterator[Problem]:
    for j, group in enumerate(from_groups):
        if group not in groups:
            yield loc.problem((*path, "from", j), _unknown("group", group, groups) + " (no human is in it)")
    for group in at_least:
        if group not in groups:
            yield loc.problem((*path, "at_least", group), _unknown("group", group, groups), key=True)


def _cycle_problems(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    reported: set[str] = set()
    for start in doc.environments:
        chain, env = [start], doc.environments[start].promotes_to
        while env is not None and env in doc.environments:
            if env in chain:
                cycle = [*chain[chain.index(env):], env]
                if not reported & set(cycle):
                    reported |= set(cycle)
                    yield loc.problem(("environments", env, "promotes_to"),
                                      f"promotion chain has a cycle: {' -> '.join(cycle)}")
                break
            chain.append(env)
            env = doc.environments[env].promotes_to


def _predecessor(doc: PolicyDocument, env: str) -> str | None:
    """The environment that promotes to `env` (where to run first), if any."""
    for name, e in doc.environments.items():
        if e.promotes_to == env:
            return name
    return None


def _rule_envs(doc: PolicyDocument, rule: Any) -> list[str]:
    """The environments a rule can match: its `environment`, else its targets' environments, else all."""
    envs = set(doc.environments)
    if rule.when.environment:
        envs &= set(rule.when.environment)
    if rule.when.target:
        envs &= {doc.targets[t].environment for t in rule.when.target if t in doc.targets}
    return sorted(envs)


# --- the hard floor (invariant 6) ------------------------------------------------------------------


def _floor_problems(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    protected = {n for n, e in doc.environments.items() if e.protected}
    for role, grants in doc.roles.items():
        for env_name, grant in grants.items():
            covered = {env_name} if env_name != "*" else protected - set(grants)
            hit = sorted(covered & protected)
            if hit and grant.autonomous == "destructive":
                yield loc.problem(
                    ("roles", role, env_name, "autonomous"),
                    f"hard floor: role {role!r} would let agents take destructive actions alone in protected "
                    f"environment {hit[0]!r}; use `autonomous: write` and `approve: {{destructive: 2}}`",
                )
    for i, rule in enumerate(doc.rules):
        if rule.effect != "allow":
            continue
        can_be_destructive = not rule.when.risk or any(
            r in (Risk.destructive, Risk.unknown) for r in rule.when.risk
        )
        hit = sorted(set(_rule_envs(doc, rule)) & protected)
        if hit and can_be_destructive:
            yield loc.problem(
                ("rules", i, "effect"),
                f"hard floor: rule {rule.id!r} allows without approval an action that can be destructive in "
                f"protected environment {hit[0]!r}; restrict it with `when: {{risk: [read, write]}}` or make "
                "it `effect: approve`",
            )


# --- approvals that can never be gathered; hints ---------------------------------------------------


def _warnings(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    yield from _unsatisfiable(doc, loc)
    yield from _tag_problems(doc, loc)


def _unsatisfiable(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    """Approvals that can never be gathered: fewer eligible humans than required, the agent's owner
    excluded. Severity `unsatisfiable`: `policy lint` reports it as an error, loading keeps it a
    warning so a policy that served yesterday still starts after an upgrade (docs/design-deviations.md)."""
    members: dict[str, set[str]] = {}
    for name, human in doc.humans.items():
        for g in human.groups:
            members.setdefault(g, set()).add(name)

    def eligible(groups: tuple[str, ...]) -> set[str]:
        return set(doc.humans) if not groups else set().union(*(members.get(g, set()) for g in groups))

    specs: list[tuple[Path_, Any, list[str]]] = []
    for role, grants in doc.roles.items():
        holders = [a for a, agent in doc.agents.items() if role in agent.roles]
        for env_name, grant in grants.items():
            # An approval for a risk the role may already take alone never applies.
            specs += [(("roles", role, env_name, "approve", r), s, holders) for r, s in grant.approve.items()
                      if _AUTONOMY_RANK[r] > _AUTONOMY_RANK[grant.autonomous]]
    for i, rule in enumerate(doc.rules):
        if rule.approvals is None:
            continue
        agents = [a for a, agent in doc.agents.items()
                  if (not rule.when.agent or a in rule.when.agent)
                  and (not rule.when.role or set(agent.roles) & set(rule.when.role))]
        specs.append((("rules", i, "approvals"), rule.approvals, agents))
    for path, spec, agents in specs:
        pool = eligible(spec.from_groups)
        source = f"from {', '.join(spec.from_groups)}" if spec.from_groups else "from anyone"
        if len(pool) < spec.count:
            yield loc.problem(path, f"needs {spec.count} approvals {source} but only {len(pool)} human(s) are "
                              f"eligible ({', '.join(sorted(pool)) or 'nobody'}): it can never be approved; "
                              "add humans to the group or lower the count", severity=UNSATISFIABLE)
            continue
        for agent in agents:
            owner = doc.agents[agent].owner
            short = _shortfall(spec, pool - {owner}, members, owner)
            if short:
                yield loc.problem(path, f"{short} for agent {agent!r}: its owner {owner!r} never counts as its "
                                  "approver, so it can never be approved; add humans or lower the count",
                                  severity=UNSATISFIABLE)
                break


_AUTONOMY_RANK = {"ask": 0, "read": 1, "write": 2, "destructive": 3}


def _shortfall(spec: Any, pool: set[str], members: dict[str, set[str]], owner: str) -> str:
    if len(pool) < spec.count:
        return f"needs {spec.count} approvals but only {len(pool)} human(s) are eligible ({', '.join(sorted(pool))})"
    for group, n in spec.at_least.items():
        left = members.get(group, set()) - {owner}
        if len(left) < n:
            return f"needs {n} approvals from {group} but only {len(left)} of its humans are eligible"
    return ""


#: SQL statements a deny rule's regex usually spells out (`DROP\s+TABLE`); the statement tag says it
#: for every spelling the classifier understands, comments and case included.
_SQL_STATEMENT = regex.compile(
    r"(?i)(?<![a-z])(?:(?P<drop>drop)\W+(?:table|database|schema|index|view|role|user|function)"
    r"|(?P<alter>alter)\W+(?:table|database|schema|role|user|system)|(?P<truncate>truncate)(?![a-z])"
    r"|(?P<grant>grant)\W+\w|(?P<revoke>revoke)\W+\w|(?P<delete>delete)\W+from|(?P<insert>insert)\W+into"
    r"|(?P<update>update)\W+\w+\W+set|(?P<merge>merge)\W+into)"
)
#: Regex syntax between words (`\s+`, `\b`, `[ ]*`) read as a space, so the statement shows through.
_REGEX_GAPS = regex.compile(r"\\[sb][+*?]?|\[[^\]]*\][+*?]?|\(\?[a-z]+\)|[+*?^$]")


def statement_tag_named(pattern: str) -> str | None:
    """The SQL statement tag a regular expression spells out, if any (`DROP\\s+TABLE` → `drop`)."""
    found = _SQL_STATEMENT.search(_REGEX_GAPS.sub(" ", pattern))
    if found is None:
        return None
    return next(str(name) for name, value in found.groupdict().items() if value)


def _tag_problems(doc: PolicyDocument, loc: Locations) -> Iterator[Problem]:
    for i, rule in enumerate(doc.rules):
        for j, tag in enumerate(rule.when.tags):
            if tag not in KNOWN_TAGS:
                path = (("rules", i, "when", "tags", j) if _is_seq(loc, ("rules", i, "when", "tags"))
                        else ("rules", i, "when", "tags"))
                yield loc.problem(path, _unknown("tag", tag, KNOWN_TAGS) + ": no classifier sets it, so this "
                                  "rule never matches", severity="warning")
        if rule.effect == "allow":
            continue
        if rule.when.kind and not set(rule.when.kind) & {Kind.sql, Kind.shell, Kind.mcp}:
            continue
        for j, pattern in enumerate(rule.when.input):
            named = statement_tag_named(pattern)
            if named is not None and named not in rule.when.tags:
                yield loc.problem(("rules", i, "when", "input", j) if _is_seq(loc, ("rules", i, "when", "input"))
                                  else ("rules", i, "when", "input"),
                                  f"the pattern `{pattern}` names a {named.upper()} statement: `tags: [{named}]` "
                                  "matches every spelling of it the SQL classifier reads, in SQL actions and in "
                                  "SQL run from shell or MCP (keep the pattern too if you like)", severity="hint")
