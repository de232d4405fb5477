"""RFC 6962 hashing and proofs: published vectors, and an independent naive computation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit import merkle, verify

# Certificate Transparency's reference tree (RFC 6962 test vectors).
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


# --- an independent, naive RFC 6962 (recursion over leaf lists, straight from the RFC text) ----


def naive_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, leaves[:k], whole), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


class Tree:
    """Nodes built by merkle.appended_nodes, as the audit log stores them."""

    def __init__(self, entries: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        for size, entry in enumerate(entries):
            for level, index, digest in merkle.appended_nodes(size, merkle.leaf_hash(entry), self.get):
                self.nodes[(level, index)] = digest

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def test_reference_roots() -> None:
    tree = Tree(LEAVES)
    for size, expected in enumerate(ROOTS):
        assert merkle.root(size, tree.get).hex() == expected
        assert naive_mth(LEAVES[:size]).hex() == expected


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    tree = Tree(LEAVES)
    proof = merkle.inclusion_proof(index, size, tree.get)
    assert [p.hex() for p in proof] == path
    leaf = merkle.leaf_hash(LEAVES[index])
    assert verify.verify_inclusion(index, size, leaf, proof, bytes.fromhex(ROOTS[size]))
    assert not verify.verify_inclusion(index, size, leaf, proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    tree = Tree(LEAVES)
    proof = merkle.consistency_proof(old, new, tree.get)
    assert [p.hex() for p in proof] == path
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify.verify_consistency(old, new, proof, old_root, new_root)
    if old != new:
        assert not verify.verify_consistency(old, new, proof, new_root, new_root)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True))
def test_every_proof_matches_the_naive_computation(entries: list[bytes]) -> None:
    tree = Tree(entries)
    n = len(entries)
    frontier = verify.Frontier()
    for size in range(1, n + 1):
        frontier.push(merkle.leaf_hash(entries[size - 1]))
        root = naive_mth(entries[:size])
        assert merkle.root(size, tree.get) == root == frontier.root()
    root = naive_mth(entries)
    for index in range(n):
        proof = merkle.inclusion_proof(index, n, tree.get)
        assert proof == naive_path(index, entries)
        leaf = merkle.leaf_hash(entries[index])
        assert verify.verify_inclusion(index, n, leaf, proof, root)
        assert not verify.verify_inclusion(index, n, merkle.leaf_hash(entries[index] + b"x"), proof, root)
        if n > 1:
            assert not verify.verify_inclusion((index + 1) % n, n, leaf, proof, root)
    for old in range(1, n + 1):
        proof = merkle.consistency_proof(old, n, tree.get)
        assert proof == naive_subproof(old, entries, True)
        assert verify.verify_consistency(old, n, proof, naive_mth(entries[:old]), root)
        if old < n:
            forged = naive_mth([*entries[: old - 1], b"?" * 13])  # longer than any generated entry
            assert not verify.verify_consistency(old, n, proof, forged, root)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000, 1_000_000, 2**40 - 1])
def test_proofs_read_log_n_nodes(size: int) -> None:
    bound = 2 * size.bit_length() + 2
    assert len(merkle.needed_nodes(lambda g: merkle.inclusion_proof(size - 1, size, g))) <= bound
    assert len(merkle.needed_nodes(lambda g: merkle.inclusion_proof(0, size, g))) <= bound
    assert len(merkle.needed_nodes(lambda g: merkle.root(size, g))) == bin(size).count("1")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merkle.inclusion_proof(3, 3, Tree(LEAVES[:3]).get), "not in a tree"),
        (lambda: merkle.consistency_proof(0, 3, Tree(LEAVES[:3]).get), "no consistency proof"),
        (lambda: merkle.consistency_proof(4, 3, Tree(LEAVES[:3]).get), "no consistency proof"),
    ],
)
def test_impossible_proofs_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("index", "size", "proof_len"),
    [(0, 0, 0), (5, 5, 0), (-1, 5, 0)],
)
def test_verify_inclusion_rejects_impossible_positions(index: int, size: int, proof_len: int) -> None:
    assert not verify.verify_inclusion(index, size, bytes(32), [bytes(32)] * proof_len, bytes(32))
