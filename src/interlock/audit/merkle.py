"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs over stored subtree hashes. Pure: no I/O.

The tree is kept as the hashes of its *perfect* subtrees: node (level, index) covers leaves
[index·2^level, (index+1)·2^level). Appending leaf n adds node (0, n) and one parent per trailing
1-bit of n, so an append costs O(log n) (O(1) amortised). Every hash RFC 6962 needs — the root at
any size, inclusion and consistency proofs — is a combination of O(log n) such nodes, read through
a `NodeGetter`. `needed_nodes` tells a caller which nodes to fetch in one query beforehand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from interlock.audit.verify import verify_consistency, verify_inclusion

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: Node ids pack (last leaf covered, level) into one BIGINT: the level in the low 6 bits (levels 0..63),
#: the last leaf above it (leaf positions up to 2^57).
LEVEL_BITS = 6

NodeGetter = Callable[[int, int], bytes]

__all__ = [
    "EMPTY_ROOT",
    "NodeGetter",
    "appended_nodes",
    "consistency_proof",
    "frontier",
    "inclusion_proof",
    "leaf_hash",
    "needed_nodes",
    "node_hash",
    "node_id",
    "root",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def node_id(level: int, index: int) -> int:
    """The stored id of node (level, index), in the order appends create nodes: appending leaf n creates
    exactly the nodes whose last leaf is n, level 0 first, so a batch's new nodes take consecutive ids and
    land on one or two b-tree pages at the table's right edge (by level, each level of a batch sat on its
    own page: ~log2(size) pages written per batch, issue 18.5; migration 0003)."""
    last = ((index + 1) << level) - 1
    return (last << LEVEL_BITS) | level


def frontier(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) whose concatenation is the tree of `size` leaves,
    largest first: exactly the nodes an append needs as left siblings."""
    nodes = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, (size >> level) - 1))
    return nodes


def appended_nodes(size: int, leaf: bytes, get: NodeGetter) -> list[tuple[int, int, bytes]]:
    """The nodes (level, index, hash) created by appending `leaf` as leaf number `size`."""
    created = [(0, size, leaf)]
    current, index, level = leaf, size, 0
    while index & 1:
        current = node_hash(get(level, index - 1), current)
        index >>= 1
        level += 1
        created.append((level, index, current))
    return created


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(start: int, end: int, get: NodeGetter) -> bytes:
    """MTH(D[start:end]) for a range that RFC 6962's recursion produces (start aligned)."""
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        if start % n:
            raise ValueError(f"range [{start}, {end}) is not aligned to a subtree")
        return get(level, start >> level)
    k = _split(n)
    return node_hash(subtree_hash(start, start + k, get), subtree_hash(start + k, end, get))


def root(size: int, get: NodeGetter) -> bytes:
    """The tree head of the first `size` leaves (the empty tree's is SHA-256 of nothing)."""
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, get)


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]): the audit path proving leaf `index` is in the tree."""
    if not 0 <= index < size:
        raise ValueError(f"entry {index} is not in a tree of {size} entries")
    return _path(index, 0, size, get)


def _path(m: int, start: int, end: int, get: NodeGetter) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, start, start + k, get), subtree_hash(start + k, end, get)]
    return [*_path(m - k, start + k, end, get), subtree_hash(start, start + k, get)]


def consistency_proof(old_size: int, new_size: int, get: NodeGetter) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]): proves the old tree is a prefix of the new one."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size} (need 0 < old ≤ new)")
    return _subproof(old_size, 0, new_size, True, get)


def _subproof(m: int, start: int, end: int, whole: bool, get: NodeGetter) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree_hash(start, end, get)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, start, start + k, whole, get), subtree_hash(start + k, end, get)]
    return [*_subproof(m - k, start + k, end, False, get), subtree_hash(start, start + k, get)]


def needed_nodes(compute: Callable[[NodeGetter], object]) -> set[tuple[int, int]]:
    """Which nodes `compute` reads: run it once on placeholder hashes (the node positions a
    proof needs never depend on the hash values), so they can be fetched in one query."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(32)

    compute(record)
    return wanted
