"""Interlock's hot path as a fraction of its floor (issue 18.5), measured interleaved in one run:

- baseline: `bench/baseline_app.py` on uvicorn, the same JSON body parsed and one group-committed,
  fsync'd SQLite append per request (WAL, synchronous=FULL);
- Interlock: `interlock serve`, one worker, SQLite, the example policy (guards on), 9 allowed reads to 1
  approval-required write (advisory), each answered after its audit entries are durable, in two mixes:
  - fixed: the same read and the same write over and over (the mix every earlier figure was taken with);
  - varied: 300 distinct proposals (`varied_mix`: shell, kubectl, sql and http commands of tests/corpus that
    the example policy lets kiro read in production, and writes it sends for approval, 9:1), so a cache
    or shortcut whose win depends on repeated payloads shows as the gap between the two rows.

32 connections, wrk, loopback. The ratio is the gate (goal ≥ 20%, p99 ≤ 25 ms); the absolute figures
depend on how loaded the machine is. Run: `scripts/bench hotpath` (INTERLOCK_BENCH_SECONDS, default 10).
Each row also gives the server process's CPU time per request (user + system, every thread, from
/proc): on a machine other work loads, it moves far less than req/s does, so it shows a change that the
rates hide in the noise.

`INTERLOCK_BENCH_PEER_SRC=/path/to/other/src` also measures the Interlock of that source tree (e.g.
`git archive <commit> src | tar -x -C /tmp/peer`) in every round, interleaved: before/after on one machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from interlock.classify.registry import classify, payload_from_input
from interlock.model import Action, Kind, Risk
from interlock.policy import Policy, load_policy
from interlock.policy.engine import decide
from interlock.policy.testing import context_for
from interlock.testing import free_port, live_server

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
DURATION_S = int(os.environ.get("INTERLOCK_BENCH_SECONDS", "10"))
CONNECTIONS = 32
ROUNDS = int(os.environ.get("INTERLOCK_BENCH_ROUNDS", "2"))
PEER_SRC = os.environ.get("INTERLOCK_BENCH_PEER_SRC")
#: Which mixes to run, comma-separated (default all three): `fixed` alone for a quick A/B.
MIXES = os.environ.get("INTERLOCK_BENCH_MIXES", "fixed,varied,unique").split(",")
READ = {"kind": "shell", "environment": "production", "payload": {"command": "ls -la /srv/app"},
        "rationale": {"intent": "look around"}, "mode": "advisory"}
WRITE = {"kind": "shell", "environment": "production",
         "payload": {"command": "kubectl scale deployment/api --replicas=5 -n billing"},
         "rationale": {"intent": "more capacity"}, "mode": "advisory"}
FIXED = [READ] * 9 + [WRITE]
#: The varied mix's size: reads and approval-required writes, 9:1.
VARIED_READS, VARIED_WRITES = 270, 30


def varied_mix(policy: Path = POLICY, *, unique: int = 0) -> list[dict[str, object]]:
    """300 distinct proposal bodies, 9 reads to 1 write in every ten (the order wrk and hotpath_cpu cycle
    through): commands of tests/corpus (shell, kubectl, sql, http) that the policy decides for kiro in
    production as allow (reads) or approval_required with risk write (no destructive ones: the burst and
    blast-radius guards would trip on them and turn the mix into denials). No target: the example policy's
    targets hold credentials the bench does not have. Deterministic (seeded), so runs compare.

    `unique=K`: the unique mix, K variants of each of 300 proposals (`numbered`: a shell or SQL comment, an
    http query parameter, a kubectl request timeout carrying the variant's number), 300·K distinct bodies in
    the same 9:1 order; only proposals whose every variant is decided as the original are drawn. With K = 40,
    a body comes back after 12,000 others: a cache of answers per body (bounded far below that) never hits,
    so this row is what a proposal costs when nothing about it was seen before."""
    loaded = load_policy(policy)
    reads: list[dict[str, object]] = []
    writes: list[dict[str, object]] = []
    for kind in (Kind.shell, Kind.kubectl, Kind.sql, Kind.http):
        for line in (ROOT / "tests" / "corpus" / f"{kind.value}.jsonl").read_text().splitlines():
            row = json.loads(line)
            text = row["input"] if isinstance(row["input"], str) else json.dumps(row["input"])
            try:
                action = Action(kind=kind, environment="production", payload=payload_from_input(kind, text))
            except ValueError:
                continue
            found = classify(kind, action.payload, context_for(loaded, None))
            decision = decide(loaded, "kiro", action, found).value.value
            body = {"kind": kind.value, "environment": "production", "payload": action.payload,
                    "rationale": {"intent": str(row.get("why") or "bench")}, "mode": "advisory"}
            variants = [numbered(body, k) for k in (0, unique - 1)] if unique else []
            if variants and (body in variants or any(_decided(loaded, v) != (decision, found.risk) for v in variants)):
                continue
            if decision == "allow":
                reads.append(body)
            elif decision == "approval_required" and found.risk is Risk.write:
                writes.append(body)
    rng = random.Random(185)
    reads, writes = rng.sample(reads, VARIED_READS), rng.sample(writes, VARIED_WRITES)
    mix = [body for i in range(VARIED_WRITES) for body in (*reads[i * 9:i * 9 + 9], writes[i])]
    return [numbered(body, k) for k in range(unique) for body in mix] if unique else mix


#: Variants of each proposal in the unique mix.
UNIQUE_VARIANTS = 40


def numbered(body: dict[str, object], k: int) -> dict[str, object]:
    """`body` made distinct by the number `k`, in a way its kind reads as no change to what it does (a body of
    another shape comes back as it is, and `varied_mix(unique=…)` leaves it out: it is not distinct)."""
    payload = dict(body["payload"])  # type: ignore[call-overload]
    kind = body["kind"]
    if kind == "shell" and "command" in payload:
        payload["command"] = f"{payload['command']} # bench variant {k}"
    elif kind == "sql" and "sql" in payload:
        payload["sql"] = f"{payload['sql']} -- bench variant {k}"
    elif kind == "kubectl" and "args" in payload:
        payload["args"] = [*payload["args"], f"--request-timeout={k + 1}s"]
    elif kind == "kubectl" and "command" in payload:
        payload["command"] = f"{payload['command']} --request-timeout={k + 1}s"
    elif kind == "http" and "url" in payload:
        url = str(payload["url"])
        payload["url"] = f"{url}{'&' if '?' in url else '?'}bench_variant={k}"
    else:
        return body
    return {**body, "payload": payload}


def _decided(policy: Policy, body: dict[str, object]) -> tuple[str, Risk] | None:
    kind = Kind(str(body["kind"]))
    try:
        action = Action(kind=kind, environment="production", payload=body["payload"])  # type: ignore[arg-type]
    except ValueError:
        return None
    found = classify(kind, action.payload, context_for(policy, None))
    return decide(policy, "kiro", action, found).value.value, found.risk


def expected_state(index: int) -> str:
    """The state the mixes' body at `index` is answered with: every tenth is the approval-required write."""
    return "pending_approval" if index % 10 == 9 else "allowed"


def _wrk(url: str, bodies: list[dict[str, object]], token: str, workdir: Path) -> dict[str, float]:
    script = workdir / "mix.lua"
    texts = ", ".join(json.dumps(json.dumps(b)) for b in bodies)
    script.write_text(
        f"local bodies = {{{texts}}}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  return wrk.format('POST', nil, {['Content-Type'] = 'application/json', "
        f"['Authorization'] = 'Bearer {token}'}}, bodies[(n % #bodies) + 1])\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %d\\nP99 %d\\nNON2XX %d\\n", latency:percentile(50), '
        "latency:percentile(99), summary.errors.status))\n"
        "end\n")
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--timeout", "5s", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    values = dict(re.findall(r"^(P50|P99|NON2XX) (\d+)$", out, re.M))
    return {"rps": rps, "p50_ms": int(values["P50"]) / 1000, "p99_ms": int(values["P99"]) / 1000,
            "non2xx": int(values["NON2XX"])}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, every thread (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(pid: int, url: str, bodies: list[dict[str, object]], token: str, workdir: Path) -> dict[str, float]:
    """wrk's figures, and the server's CPU µs per request over the run."""
    before = _cpu_seconds(pid)
    row = _wrk(url, bodies, token, workdir)
    row["cpu_us"] = (_cpu_seconds(pid) - before) / max(1.0, row["rps"] * DURATION_S) * 1e6
    return row


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="interlock-hotpath-") as scratch:
        work = Path(scratch)
        port = free_port()
        baseline = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "bench.baseline_app:create",
                                     "--port", str(port), "--log-level", "warning", "--no-access-log"],
                                    cwd=ROOT, env={**os.environ, "BASELINE_DB": str(work / "baseline.db")})
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.post(f"{url}/append", json=READ).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            with contextlib.ExitStack() as stack:
                servers = {"interlock POST /v1/actions (mix)": stack.enter_context(
                    live_server(POLICY, f"sqlite:///{work / 'interlock.db'}", work))}
                if PEER_SRC:
                    peer_work = work / "peer"
                    peer_work.mkdir()
                    servers["peer POST /v1/actions (mix)"] = stack.enter_context(
                        live_server(POLICY, f"sqlite:///{peer_work / 'interlock.db'}", peer_work,
                                    env={"PYTHONPATH": PEER_SRC}))
                tokens = {name: server.token("agent", "kiro") for name, server in servers.items()}
                every = {"fixed": lambda: FIXED, "varied": varied_mix,
                         "unique": lambda: varied_mix(unique=UNIQUE_VARIANTS)}
                mixes = {name: every[name]() for name in MIXES}
                for name, server in servers.items():
                    # Every body of both mixes once: each is answered as the mix says (and the server warmed).
                    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens[name]}"}) as c:
                        for mix in mixes.values():
                            # The unique mix: its first 300 (each variant is decided alike: `varied_mix`).
                            states = [c.post("/v1/actions", json=b).json()["state"] for b in mix[:300]]
                            wrong = [(i, s) for i, s in enumerate(states) if s != expected_state(i)]
                            assert not wrong, (name, wrong[:5])
                print(f"\nhot path vs its floor: {CONNECTIONS} connections, {DURATION_S} s a run, {ROUNDS} rounds "
                      f"interleaved, loopback, SQLite, one worker; load average {os.getloadavg()[0]:.1f} at the start; "
                      "mixes: " + ", ".join(f"{name} ({len({json.dumps(b, sort_keys=True) for b in mix})} distinct)"
                                            for name, mix in mixes.items()))
                print(f"{'round':>5} {'app':<34} {'req/s':>8} {'p50':>9} {'p99':>9} {'non-2xx':>8} {'CPU/req':>9}")
                runs = [(f"{name.split(' ')[0]} {mix}", name, mix) for name in servers for mix in mixes]
                ratios: dict[str, list[float]] = {run: [] for run, _, _ in runs}
                cpu: dict[str, list[float]] = {name: [] for name in ("baseline", *ratios)}
                for i in range(ROUNDS):
                    floor = _measured(baseline.pid, f"{url}/append", [READ], "", work)
                    cpu["baseline"].append(floor["cpu_us"])
                    rows = [("baseline (parse + durable append)", floor)]
                    for run, name, mix in runs:
                        server = servers[name]
                        rows.append((f"{name.removesuffix(' (mix)')} ({mix})",
                                     _measured(server.process.pid, f"{server.url}/v1/actions", mixes[mix],
                                               tokens[name], work)))
                        ratios[run].append(rows[-1][1]["rps"] / floor["rps"])
                        cpu[run].append(rows[-1][1]["cpu_us"])
                    for label, row in rows:
                        print(f"{i + 1:>5} {label:<34} {row['rps']:>8.0f} {row['p50_ms']:>7.1f}ms "
                              f"{row['p99_ms']:>7.1f}ms {row['non2xx']:>8} {row['cpu_us']:>7.0f}µs", flush=True)
                print(f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine moves req/s most)")
                for name, values in ratios.items():
                    print(f"{name.capitalize()} / baseline: {', '.join(f'{r:.1%}' for r in values)} "
                          "(goal ≥ 20%, p99 ≤ 25 ms); CPU per request x"
                          f"{', x'.join(f'{c / b:.1f}' for c, b in zip(cpu[name], cpu['baseline'], strict=True))} "
                          "the baseline's")
        finally:
            baseline.terminate()
            baseline.wait(timeout=15)


if __name__ == "__main__":
    main()
