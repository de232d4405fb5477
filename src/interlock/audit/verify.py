"""Standalone verifier for an Interlock audit export. Needs only the Python standard library and
`cryptography`; imports nothing from Interlock, so a third party can read and run this one file:

    python verify.py export.jsonl audit-ed25519.pub.pem [older-key.pub.pem …]
    python verify.py --witness saved-checkpoint.json export.jsonl audit-ed25519.pub.pem
    python verify.py --proof proof.json audit-ed25519.pub.pem   (the output of `interlock audit proof N`)

It recomputes the RFC 6962 Merkle tree over every entry, checks each checkpoint's Ed25519
signature and that its root equals the recomputed root at its tree size, and reports the first
place where the log is wrong. Exit status 0 = the export verifies, 1 = it does not, 2 = usage.

Export format (JSON Lines): a header line {"type": "header", "format": "interlock-audit-export/1"},
then {"type": "entry", "index": i, "entry": "<canonical JSON text>", "leaf_hash": "<hex>"} in index
order (with "mac": HMAC-SHA256 of "index:leaf_hash" under the log's entry key, checked only with
--entry-key), then {"type": "checkpoint", "body": "<canonical JSON text>", "signature": "<hex>"} lines.
The leaf is SHA-256(0x00 ‖ UTF-8 bytes of "entry"); the signature covers the UTF-8 bytes of
"body", whose fields are format, key_id, root (hex), time and tree_size.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXPORT_FORMAT = "interlock-audit-export/1"
CHECKPOINT_FORMAT = "interlock-checkpoint/1"


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- RFC 9162 §2.1.3.2 and §2.1.4.2 -------------------------------------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` shows leaf number `index` is in the tree of `size` leaves with `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> bool:
    """True when `proof` shows the tree (old_size, old_root) is a prefix of (new_size, new_root)."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The right edge of a growing tree: the root after each append in O(log n) memory."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing

    def push(self, leaf: bytes) -> None:
        stack, size, current = self._stack, 1, leaf
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            current = hashlib.sha256(b"\x01" + left + current).digest()
            size <<= 1
        stack.append((size, current))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        current = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            current = _node(left, current)
        return current


# --- checkpoints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: `body` is canonical JSON text, `signature` the hex Ed25519 signature."""

    body: str
    signature: str

    @property
    def fields(self) -> dict[str, Any]:
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("checkpoint body is not a JSON object")
        return value

    @property
    def tree_size(self) -> int:
        size = self.fields.get("tree_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"checkpoint tree_size is not a non-negative integer: {size!r}")
        return size

    @property
    def root(self) -> bytes:
        value = self.fields.get("root")
        if not isinstance(value, str) or len(value) != 64:
            raise ValueError(f"checkpoint root is not 64 hex digits: {value!r}")
        return bytes.fromhex(value)

    def to_json(self) -> dict[str, str]:
        return {"body": self.body, "signature": self.signature}


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM, or from 64 hex digits of the raw key."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
    else:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode()))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


#: One trusted public key, or several (a keyring across key rotations): each checkpoint is checked
#: with the key its key_id names.
Keys = Ed25519PublicKey | Sequence[Ed25519PublicKey]


def keyring(keys: Keys) -> dict[str, Ed25519PublicKey]:
    """{key id: public key} of the trusted keys."""
    ring = [keys] if isinstance(keys, Ed25519PublicKey) else list(keys)
    return {key_id(k): k for k in ring}


def checkpoint_problem(checkpoint: Checkpoint, keys: Keys) -> str | None:
    """What is wrong with a checkpoint on its own (format, key, signature), or None."""
    ring = keyring(keys)
    try:
        fields = checkpoint.fields
        _ = checkpoint.tree_size, checkpoint.root
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError as exc:
        return f"malformed: {exc}"
    if fields.get("format") != CHECKPOINT_FORMAT:
        return f"unknown format {fields.get('format')!r}"
    public_key = ring.get(str(fields.get("key_id")))
    if public_key is None:
        given = ", ".join(sorted(ring)) or "none"
        return f"signed by key {fields.get('key_id')!r}, which is not among the given public keys ({given})"
    try:
        public_key.verify(signature, checkpoint.body.encode("utf-8"))
    except InvalidSignature:
        return "signature does not verify (forged or altered)"
    return None


# --- verification of a whole log ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong. `index`..`until` (exclusive) is the range of entries it implicates."""

    where: str
    what: str
    index: int | None = None
    until: int | None = None
    exact: bool = True  # False: something in index..until is bad, not necessarily `index` itself


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    verified_checkpoints: int = 0
    root: str = ""
    covered: int = 0  # entries covered by the largest valid checkpoint
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    signed_by: dict[str, list[int]] = field(default_factory=dict)  # key id -> tree sizes it validly signed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        """The first entry known to be bad or the start of the first range known to hold a bad
        entry, whichever comes first."""
        return min((p.index for p in self.problems if p.index is not None), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "verified_checkpoints": self.verified_checkpoints,
            "covered_by_checkpoint": self.covered,
            "root": self.root,
            "first_bad_index": self.first_bad_index,
            "problems": [p.__dict__ for p in self.problems],
            "notes": list(self.notes),
            "signed_by": {k: list(v) for k, v in self.signed_by.items()},
        }

    def describe(self) -> str:
        lines = [
            f"{'OK' if self.ok else 'FAILED'}: {self.entries} entries, "
            f"{self.verified_checkpoints}/{self.checkpoints} checkpoints verified, root {self.root}",
        ]
        if self.ok and self.covered < self.entries:
            lines.append(f"note: entries {self.covered}..{self.entries - 1} are not yet covered by a checkpoint")
        if self.first_bad_index is not None:
            lines.append(f"first bad index: {self.first_bad_index}")
        lines.extend(f"- {p.where}: {p.what}" for p in self.problems)
        for kid, sizes in sorted(self.signed_by.items()):
            span = f"tree size {sizes[0]}" if len(sizes) == 1 else f"tree sizes {sizes[0]}..{sizes[-1]}"
            lines.append(f"key {kid} signed {len(sizes)} checkpoint{'s' if len(sizes) != 1 else ''} ({span})")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def verify_log(
    entries: Iterable[tuple[int, bytes, str | None]],
    checkpoints: Iterable[Checkpoint],
    public_key: Keys,
    max_problems: int = 50,
) -> Report:
    """Recompute the tree over `entries` ((index, entry bytes, recorded leaf hash hex or None), in
    index order) and check every checkpoint against it."""
    report = Report()
    valid: dict[int, Checkpoint] = {}
    for n, checkpoint in enumerate(checkpoints):
        report.checkpoints += 1
        problem = checkpoint_problem(checkpoint, public_key)
        where = _checkpoint_where(n, checkpoint)
        if problem is not None:
            report.problems.append(Problem(where, problem))
            continue
        size = checkpoint.tree_size
        if size in valid and valid[size].root != checkpoint.root:
            report.problems.append(
                Problem(
                    where,
                    "two validly signed checkpoints disagree on this tree size (the log was forked)",
                    index=0,
                    until=size,
                    exact=False,
                )
            )
            continue
        valid[size] = checkpoint
        report.signed_by.setdefault(str(checkpoint.fields["key_id"]), []).append(size)
    for signed in report.signed_by.values():
        signed.sort()
    sizes = sorted(valid)
    pending = iter(sizes)
    next_size = next(pending, None)
    last_good = 0
    frontier = Frontier()
    if next_size == 0:
        last_good = _check_root(report, valid[0], frontier, last_good)
        next_size = next(pending, None)
    expected = 0
    for index, entry, recorded in entries:
        if len(report.problems) >= max_problems:
            break
        if index != expected:
            what = (
                f"entries {expected}..{index - 1} are missing"
                if index > expected
                else f"entry {index} appears again or out of order after entry {expected - 1}"
            )
            report.problems.append(
                Problem(
                    f"entry {min(index, expected)}",
                    what,
                    index=min(index, expected),
                    until=max(index, expected) + 1,
                )
            )
            expected = max(expected, index)
            if index < frontier.size:
                continue
        leaf = _leaf(entry)
        if recorded is not None and recorded != leaf.hex():
            report.problems.append(
                Problem(
                    f"entry {index}",
                    "content does not match its recorded leaf hash (the entry was changed)",
                    index=index,
                    until=index + 1,
                )
            )
        frontier.push(leaf)
        expected = index + 1
        while next_size is not None and frontier.size == next_size:
            last_good = _check_root(report, valid[next_size], frontier, last_good)
            next_size = next(pending, None)
    report.entries = frontier.size
    report.root = frontier.root().hex()
    for size in sizes:
        if size > frontier.size:
            # The checkpoint proves entries up to size-1 existed: the first missing one is known. Whether
            # the end was cut off or entries were deleted earlier and the rest renumbered, an earlier
            # checkpoint's root (a range) or the store's entry MACs (exact) locate the latter.
            report.problems.append(
                Problem(
                    f"checkpoint at tree size {size}",
                    f"the log has only {frontier.size} entries but this signed checkpoint covers {size}: "
                    f"entries {frontier.size}..{size - 1} are missing (deleted from the end, or entries were "
                    "deleted earlier and the rest renumbered)",
                    index=frontier.size,
                    until=size,
                )
            )
    report.covered = max((s for s in sizes if s <= frontier.size), default=0)
    return report


def _check_root(report: Report, checkpoint: Checkpoint, frontier: Frontier, last_good: int) -> int:
    size = checkpoint.tree_size
    if frontier.root() == checkpoint.root:
        report.verified_checkpoints += 1
        return size
    report.problems.append(
        Problem(
            f"checkpoint at tree size {size}",
            f"root mismatch: an entry between {last_good} and {size - 1} was changed, inserted, removed or reordered",
            index=last_good,
            until=size,
            exact=False,
        )
    )
    return last_good


def _checkpoint_where(n: int, checkpoint: Checkpoint) -> str:
    try:
        return f"checkpoint #{n} (tree size {checkpoint.tree_size})"
    except ValueError:
        return f"checkpoint #{n}"


# --- the export file ----------------------------------------------------------------------------


class ExportError(ValueError):
    pass


def read_export(
    lines: Iterable[str], macs: dict[int, str | None] | None = None, mac_from: list[int] | None = None
) -> tuple[list[tuple[int, bytes, str | None]], list[Checkpoint]]:
    """Parse an export's JSON lines into entries and checkpoints (and, when asked, each entry's MAC and
    the header's mac_from); raises ExportError naming the line."""
    entries: list[tuple[int, bytes, str | None]] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
            if kind == "header":
                if record.get("format") != EXPORT_FORMAT:
                    raise ExportError(f"line {number}: unknown export format {record.get('format')!r}")
                if mac_from is not None and isinstance(record.get("mac_from"), int):
                    mac_from.append(record["mac_from"])
            elif kind == "entry":
                index, entry = record["index"], record["entry"]
                if not isinstance(index, int) or not isinstance(entry, str):
                    raise ExportError(f"line {number}: entry needs an integer index and a string entry")
                entries.append((index, entry.encode("utf-8"), record.get("leaf_hash")))
                if macs is not None:
                    macs[index] = record.get("mac")
            elif kind == "checkpoint":
                checkpoints.append(Checkpoint(body=str(record["body"]), signature=str(record["signature"])))
            else:
                raise ExportError(f"line {number}: unknown record type {kind!r}")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeError) as exc:
            raise ExportError(f"line {number}: not a valid export record ({exc})") from exc
    return entries, checkpoints


def verify_export(
    lines: Iterable[str], public_key: Keys, witness: Checkpoint | None = None, entry_key: bytes | None = None
) -> Report:
    """Verify an export; `witness` is a checkpoint saved earlier by a third party: the export must
    hold its entries unchanged (the log did not roll back or rewrite what the witness saw). With the
    log's `entry_key` (operators), each entry's MAC is checked too, which places a moved or forged
    entry exactly (a deletion followed by renumbering, say)."""
    macs: dict[int, str | None] = {}
    mac_from: list[int] = []
    try:
        entries, checkpoints = read_export(lines, macs, mac_from)
    except ExportError as exc:
        return Report(problems=[Problem("export", str(exc))])
    report = verify_log(entries, [*checkpoints, witness] if witness else checkpoints, public_key)
    if witness is not None:
        report.checkpoints -= 1
        if witness.body not in {c.body for c in checkpoints}:
            report.notes.append("the witness checkpoint was checked like the export's own (its problems name it last)")
    if entry_key is not None:
        start = mac_from[0] if mac_from else 0
        for index, _, leaf_hash in entries:
            mac = macs.get(index)
            good = hmac.new(entry_key, f"{index}:{leaf_hash}".encode("ascii"), hashlib.sha256).hexdigest()
            if index >= start and (mac is None or not hmac.compare_digest(good, mac)):
                report.problems.append(Problem(
                    f"entry {index}", "is not authenticated by the entry key (forged, or moved to another index)",
                    index=index, until=index + 1,
                ))
    return report


def read_witness(text: str) -> Checkpoint:
    """A checkpoint saved earlier (`interlock audit checkpoint` output): {"body", "signature"}."""
    value = json.loads(text)
    if not isinstance(value, dict) or "body" not in value or "signature" not in value:
        raise ValueError('a witness is the JSON {"body": …, "signature": …} of `interlock audit checkpoint`')
    return Checkpoint(body=str(value["body"]), signature=str(value["signature"]))


def verify_proof(bundle: dict[str, Any], public_key: Keys) -> list[str]:
    """Problems with the JSON of `interlock audit proof` (entry, leaf hash, path, checkpoint). A proof
    at a size no checkpoint signed carries the first checkpoint after it and a consistency proof."""
    if not isinstance(bundle, dict):
        return ["not a proof bundle: expected the JSON object of `interlock audit proof N`"]
    if not bundle.get("checkpoint"):
        return [
            f"the proof carries no signed checkpoint (no checkpoint covers tree size {bundle.get('tree_size')!r} "
            "yet): without one nothing ties it to the log; ask for it again once the server has signed one "
            "(`interlock audit proof N` without --size uses the latest)"
        ]
    try:
        checkpoint = Checkpoint(
            body=str(bundle["checkpoint"]["body"]), signature=str(bundle["checkpoint"]["signature"])
        )
        index, size = int(bundle["index"]), int(bundle["tree_size"])
        leaf = _leaf(str(bundle["entry"]).encode("utf-8"))
        path = [bytes.fromhex(h) for h in bundle["path"]]
        root = bytes.fromhex(str(bundle.get("root") or "")) if bundle.get("root") else None
        consistency = [bytes.fromhex(h) for h in bundle.get("consistency") or []]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"not a proof bundle: {type(exc).__name__} {exc}"]
    problems = []
    problem = checkpoint_problem(checkpoint, public_key)
    if problem is not None:
        return [f"checkpoint: {problem}"]
    if leaf.hex() != bundle.get("leaf_hash"):
        problems.append("the entry does not hash to the stated leaf hash")
    if checkpoint.tree_size == size:
        root = checkpoint.root
    elif checkpoint.tree_size < size or root is None:
        problems.append(f"the proof is for tree size {size}, the checkpoint covers {checkpoint.tree_size}")
    elif not verify_consistency(size, checkpoint.tree_size, consistency, root, checkpoint.root):
        problems.append(
            f"the proof's tree size {size} is not a prefix of the checkpoint's tree size {checkpoint.tree_size} "
            "(the consistency proof fails)"
        )
    if not problems and root is not None and not verify_inclusion(index, size, leaf, path, root):
        problems.append(f"entry {index} is not in the checkpointed tree (the path does not lead to its root)")
    return problems


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        yield from handle


USAGE = (
    "usage: python verify.py [--format text|json] [--witness CHECKPOINT.json] [--entry-key audit-entry.key]\n"
    "                        EXPORT.jsonl PUBLIC_KEY.pem [MORE_KEYS.pem …]\n"
    "       python verify.py [--format text|json] --proof PROOF.json PUBLIC_KEY.pem [MORE_KEYS.pem …]\n"
    "--format json: the report as JSON on stdout, as every `interlock` command answers it.\n"
    "Several public keys form a keyring (key rotation): each checkpoint is checked with the key it names.\n"
    "--witness: a checkpoint saved earlier (`interlock audit checkpoint`); the export must extend it.\n"
    "--entry-key: the log's audit-entry.key (operators): each entry's MAC is checked too."
)


def _format(args: list[str]) -> str | None:
    """Take `--format text|json` (or `--format=…`) out of `args`: the format asked for, or None when
    the option is malformed. `--json`, the spelling before `--format`, still means json (not in the usage)."""
    chosen = "json" if "--json" in args else "text"
    args[:] = [a for a in args if a != "--json"]
    while True:
        at = next((i for i, a in enumerate(args) if a == "--format" or a.startswith("--format=")), None)
        if at is None:
            return chosen
        if args[at] == "--format":
            if at + 1 >= len(args):
                return None
            chosen = args[at + 1]
            del args[at : at + 2]
        else:
            chosen = args[at].partition("=")[2]
            del args[at]
        if chosen not in ("text", "json"):
            return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = _format(args)
    if chosen is None:
        print(USAGE, file=sys.stderr)
        return 2
    as_json = chosen == "json"
    proof_mode = "--proof" in args
    args = [a for a in args if a != "--proof"]
    entry_key_file = None
    if "--entry-key" in args:
        at = args.index("--entry-key")
        if at + 1 >= len(args):
            print(USAGE, file=sys.stderr)
            return 2
        entry_key_file = args[at + 1]
        del args[at : at + 2]
    witness_file = None
    if "--witness" in args:
        at = args.index("--witness")
        if at + 1 >= len(args):
            print(USAGE, file=sys.stderr)
            return 2
        witness_file = args[at + 1]
        del args[at : at + 2]
    if len(args) < 2 or (proof_mode and witness_file):
        print(USAGE, file=sys.stderr)
        return 2
    keys = []
    for name in args[1:]:
        try:
            keys.append(load_public_key(Path(name).read_bytes()))
        except (OSError, ValueError) as exc:
            print(f"cannot read the public key {name}: {exc}", file=sys.stderr)
            return 2
    if proof_mode:
        try:
            problems = verify_proof(json.loads(Path(args[0]).read_text(encoding="utf-8")), keys)
        except (OSError, ValueError) as exc:
            print(f"cannot read the proof {args[0]}: {exc}", file=sys.stderr)
            return 2
        if as_json:
            print(json.dumps({"ok": not problems, "problems": problems}, indent=2))
        else:
            print("\n".join(problems) if problems else "OK: the entry is in the signed checkpoint")
        return 1 if problems else 0
    witness = None
    if witness_file is not None:
        try:
            witness = read_witness(Path(witness_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"cannot read the witness checkpoint {witness_file}: {exc}", file=sys.stderr)
            return 2
    entry_key = None
    if entry_key_file is not None:
        try:
            entry_key = bytes.fromhex(Path(entry_key_file).read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            print(f"cannot read the entry key {entry_key_file}: {exc}", file=sys.stderr)
            return 2
    try:
        report = verify_export(_lines(args[0]), keys, witness, entry_key)
    except (OSError, UnicodeError) as exc:
        print(f"cannot read the export {args[0]}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if as_json else report.describe())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
