"""Which pages an audit batch writes on SQLite: WAL frames per batch, by b-tree (issue 18.5, write amplification).

Every page a transaction dirties is one WAL frame at commit (4 KiB written, and two `pwrite64` calls: the
frame header and the page). The script runs the gateway, keeps the WAL from being checkpointed (a read
transaction opened on the empty WAL pins it), then reads the WAL's frame headers
(https://www.sqlite.org/fileformat2.html#walformat: page number, and the database size on a commit frame)
and names each page's b-tree with the `dbstat` virtual table (table or index, leaf / interior / overflow).
A count, not a time: the machine's load does not move it (the live mode's batch sizes do move with the
scheduling; the `--batch K` mode fixes them).

- live (default): `Gateway.propose_async` from 32 asyncio tasks (the HTTP route's path, as
  bench.hotpath_cpu's "gateway on a loop"), advisory mode, guards on, example policy; every commit counted,
  the audit writer's batches and the other transactions (approval requests, …) apart; and the audit
  writer thread's CPU (its own clock) per entry and per batch over the run;
- `--batch K`: the same proposals' entries (`Gateway.decided`) committed K at a time by the audit writer's
  own `_commit` (its batch hooks included) from this thread: exactly K entries a batch, deterministic
  (the CPU figure is then this thread's, the writer's work alone).

Compare two trees: `for src in /tmp/before/src src; do PYTHONPATH=$src .venv/bin/python -m bench.wal_frames; done`

    python -m bench.wal_frames [N=2000] [--mix fixed|unique] [--batch K]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import struct
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from bench.bench_hotpath import FIXED, UNIQUE_VARIANTS, varied_mix
from interlock.gateway import Mode
from interlock.model import Action
from interlock.server.app import create_app
from interlock.server.state import Settings

ROOT = Path(__file__).resolve().parent.parent
AT_ONCE = 32
WAL_HEADER, FRAME_HEADER = 32, 24


@dataclass
class Commit:
    """The pages one transaction wrote (one frame each)."""

    pages: list[int] = field(default_factory=list)


def wal_commits(wal: Path) -> tuple[int, list[Commit]]:
    """(page size, the committed transactions in the WAL, in order). Frames after the last commit frame
    (none: the run is over) and frames of an older WAL generation (other salts) are not counted."""
    data = wal.read_bytes()
    magic, _, page_size, _, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683):
        raise SystemExit(f"{wal} is not a WAL file")
    commits: list[Commit] = []
    current = Commit()
    offset = WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(data):
        page, size_after, s1, s2 = struct.unpack(">IIII", data[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break  # the rest is an older generation's frames: the WAL was restarted (the pin did not hold)
        current.pages.append(page)
        if size_after:  # a commit frame: the transaction ends here
            commits.append(current)
            current = Commit()
        offset += FRAME_HEADER + page_size
    return page_size, commits


def page_names(db: Path) -> dict[int, str]:
    """page number -> "b-tree (leaf|interior|overflow)" as the database is now."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT pageno, name, pagetype FROM dbstat").fetchall()
    finally:
        conn.close()
    kinds = {"leaf": "leaf", "internal": "interior", "overflow": "overflow"}
    return {int(page): f"{name} ({kinds.get(kind, kind)})" for page, name, kind in rows}


def describe(page: int, names: dict[int, str]) -> str:
    if page == 1 and page not in names:
        return "page 1 (header)"
    return names.get(page, "free / pointer-map page")


def pin(db: Path) -> sqlite3.Connection:
    """Checkpoint the WAL to empty, then hold a read transaction on it: no checkpoint can copy frames into
    the database or restart the WAL while it is open, so every frame the run writes stays to be read."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("BEGIN")
    conn.execute("SELECT COUNT(*) FROM audit_head").fetchone()
    return conn


Seen = tuple[int, int, tuple[int, list[Commit], dict[int, str]], float]


def thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds a thread of this process has used (its own clock: user + system)."""
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def collect(db: Path) -> tuple[int, list[Commit], dict[int, str]]:
    """Read while the pin holds (the store's last connection to close checkpoints and removes the WAL)."""
    page_size, commits = wal_commits(Path(f"{db}-wal"))
    return page_size, commits, page_names(db)


def live(settings: Settings, db: Path, n: int, actions: list[Action]) -> Seen:
    """Run n proposals on a loop, 32 at a time; (audit batches, audit entries) written meanwhile."""
    app = create_app(settings)
    server = app.state.server
    gateway = server.gateway

    async def main() -> Seen:
        for action in actions[:20]:
            await gateway.propose_async("kiro", action, mode=Mode.advisory, offload=anyio.to_thread.run_sync)
        reader = pin(db)
        batches, entries = server.audit.batches, server.audit.committed
        writer = server.audit._writer
        spent = thread_cpu(writer)
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                await gateway.propose_async("kiro", actions[i % len(actions)], mode=Mode.advisory,
                                            offload=anyio.to_thread.run_sync)

        await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
        spent = thread_cpu(writer) - spent
        done = server.audit.batches - batches, server.audit.committed - entries, collect(db), spent
        reader.close()
        return done

    try:
        return asyncio.run(main())
    finally:
        server.close()


def batched(settings: Settings, db: Path, n: int, actions: list[Action], k: int) -> Seen:
    """The proposals' entries, k per batch through the writer's own commit (hooks and all)."""
    app = create_app(settings)
    server = app.state.server
    gateway, audit = server.gateway, server.audit
    data = [gateway.decided("kiro", actions[i % len(actions)], mode=Mode.advisory).entry for i in range(n + 20)]
    try:
        audit._commit([audit._prepare("action.proposed", d) for d in data[:20]])
        reader = pin(db)
        batches, entries = audit.batches, audit.committed
        spent = time.thread_time()
        for start in range(20, n + 20 - k + 1, k):
            audit._commit([audit._prepare("action.proposed", d) for d in data[start : start + k]])
        spent = time.thread_time() - spent
        done = audit.batches - batches, audit.committed - entries, collect(db), spent
        reader.close()
        return done
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="proposals")
    parser.add_argument("--mix", choices=("fixed", "unique"), default="fixed")
    parser.add_argument("--batch", type=int, default=0, help="entries per batch (0: live, as they come)")
    parser.add_argument("--top", type=int, default=25, help="b-trees listed")
    args = parser.parse_args()
    logging.getLogger("interlock").disabled = True
    import interlock

    mix = FIXED if args.mix == "fixed" else varied_mix(unique=UNIQUE_VARIANTS)
    actions = [Action(**{k: v for k, v in body.items() if k != "mode"}) for body in mix]  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="interlock-wal-frames-") as scratch:
        work = Path(scratch)
        db = work / "i.db"
        settings = Settings(policy=ROOT / "examples" / "policy.yaml", db=f"sqlite:///{db}",
                            key_dir=work / "keys", allow_missing_secrets=True)
        if args.batch:
            batches, entries, (page_size, commits, names), cpu = batched(settings, db, args.n, actions, args.batch)
        else:
            batches, entries, (page_size, commits, names), cpu = live(settings, db, args.n, actions)
    audit_commits = [c for c in commits if any(describe(p, names).startswith("audit_entries ") for p in c.pages)]
    other = [c for c in commits if c not in audit_commits]
    mode = f"{args.batch} entries a batch" if args.batch else "live, 32 at a time"
    print(f"WAL frames ({interlock.__file__}), {args.n} proposals, {args.mix} mix "
          f"({len({json.dumps(b, sort_keys=True) for b in mix})} distinct), {mode}, page size {page_size}")
    print(f"  audit batches {batches} ({entries} entries, {entries / max(1, batches):.1f} a batch); "
          f"commits in the WAL: {len(audit_commits)} with audit entries, {len(other)} others")
    # CPU, unlike the frames, moves with the machine's load: compare trees interleaved.
    print(f"  audit writer thread CPU: {cpu / max(1, entries) * 1e6:.1f} µs per entry, "
          f"{cpu / max(1, batches) * 1e6:.0f} µs per batch")
    # A commit with audit entries: a writer batch, or a transaction that appended in place (the gate's votes).
    for label, group in (("per commit with audit entries", audit_commits), ("per other commit", other)):
        if not group:
            continue
        frames = Counter(describe(p, names) for c in group for p in c.pages)
        total = sum(frames.values())
        per_entry = f", {total / max(1, entries):.2f} per entry" if group is audit_commits else ""
        print(f"  {label}: {total / len(group):.2f} frames{per_entry}")
        for name, count in frames.most_common(args.top):
            print(f"    {count / len(group):7.2f}  {name}")


if __name__ == "__main__":
    main()
