"""RFC 6962 Merkle tree: known-answer vectors, exhaustive cross-checks against a naive reference, the frontier."""

from __future__ import annotations

import functools
import hashlib

import pytest
from upgestao_privacy.domain.leaves import canonical_json, leaf_for
from upgestao_privacy.domain.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    DictNodeSource,
    Frontier,
    MissingNode,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_proof,
    root_at,
    root_from_range,
    root_of,
    subtree_hash,
    subtree_keys,
    verify_consistency,
    verify_inclusion,
)

# Known-answer vectors from transparency-dev/merkle, proof/verify_test.go (the RFC 6962 test tree
# of certificate-transparency): the leaves, the roots of the trees of sizes 1..8, and proofs.
LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (0-based leaf index, tree size, proof); the Go file numbers leaves from 1.
INCLUSION_VECTORS = [
    (0, 1, []),
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
CONSISTENCY_VECTORS = [
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
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# Which stored nodes a proof is made of, from transparency-dev/merkle, proof/proof_test.go
# (TestInclusion / TestConsistency, the tree of 7 leaves drawn there): (level, index); a list is
# a right-edge range hashed from its nodes (their "rehash"), written here left to right.
INCLUSION_NODES = [
    (7, 0, [(0, 1), (1, 1), [(1, 2), (0, 6)]]),  # b h l=hash(i,j)
    (7, 4, [(0, 5), (0, 6), (2, 0)]),  # f j k
    (7, 6, [(1, 2), (2, 0)]),  # i k
    (5, 3, [(0, 2), (1, 0), (0, 4)]),  # c g e
    (6, 3, [(0, 2), (1, 0), (1, 2)]),  # c g i
    (15, 10, [(0, 11), (1, 4), [(1, 6), (0, 14)], (3, 0)]),
    (95, 81, [(0, 80), (1, 41), (2, 21), [(2, 22), (1, 46), (0, 94)], (4, 4), (6, 0)]),
]
CONSISTENCY_NODES = [
    (1, 2, [(0, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), [(1, 2), (0, 6)]]),  # c d g l=hash(i,j)
    (4, 7, [[(1, 2), (0, 6)]]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (10, 15, [(1, 4), (1, 5), [(1, 6), (0, 14)], (3, 0)]),
    (24, 31, [(3, 2), [(2, 6), (1, 14), (0, 30)], (4, 0)]),
]


def unhex(proof):
    return [bytes.fromhex(h) for h in proof]


# --- a naive reference, straight from RFC 6962 §2.1 -------------------------------------------


def ref_split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes):
    """MTH over leaf hashes, recursively."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = ref_split(len(hashes))
    return hashlib.sha256(b"\x01" + ref_mth(hashes[:k]) + ref_mth(hashes[k:])).digest()


def ref_path(m, hashes):
    if len(hashes) <= 1:
        return []
    k = ref_split(len(hashes))
    if m < k:
        return ref_path(m, hashes[:k]) + [ref_mth(hashes[k:])]
    return ref_path(m - k, hashes[k:]) + [ref_mth(hashes[:k])]


def ref_subproof(m, hashes, whole):
    n = len(hashes)
    if m == n:
        return [] if whole else [ref_mth(hashes)]
    k = ref_split(n)
    if m <= k:
        return ref_subproof(m, hashes[:k], whole) + [ref_mth(hashes[k:])]
    return ref_subproof(m - k, hashes[k:], False) + [ref_mth(hashes[:k])]


@functools.cache
def ref_span(lo, hi):
    """MTH of FULL[lo:hi] (memoised: the range cross-check asks for the same spans often)."""
    return ref_mth(FULL[lo:hi])


def ref_range(begin, end, lo, hi):
    """MTHs of the maximal subtrees of FULL[lo:hi] disjoint from [begin, end), left to right."""
    if hi <= begin or lo >= end:
        return [ref_span(lo, hi)]
    if begin <= lo and hi <= end:
        return []
    k = ref_split(hi - lo)
    return ref_range(begin, end, lo, lo + k) + ref_range(begin, end, lo + k, hi)


# --- helpers ----------------------------------------------------------------------------------


class RecordingSource:
    """A NodeSource over a bigger stored tree that records its calls."""

    def __init__(self, source):
        self.source = source
        self.calls = []

    def get_nodes(self, keys):
        self.calls.append(list(keys))
        return self.source.get_nodes(keys)


def numbered_leaves(size=64):
    return [leaf_hash(b"leaf %d" % i) for i in range(size)]


FULL = numbered_leaves()
FULL_SOURCE = DictNodeSource.from_leaf_hashes(FULL)
VECTOR_HASHES = [leaf_hash(leaf) for leaf in LEAVES]
VECTOR_SOURCE = DictNodeSource.from_leaf_hashes(VECTOR_HASHES)


def flip(proof, position, bit=0x10):
    changed = list(proof)
    changed[position] = bytes([changed[position][0] ^ bit]) + changed[position][1:]
    return changed


def fetched_within(source, size):
    for call in source.calls:
        for level, index in call:
            assert (index + 1) << level <= size, f"fetched node ({level}, {index}) beyond tree size {size}"


# --- hashing and known answers ----------------------------------------------------------------


def test_hash_primitives():
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == ROOTS[0]  # the root of a one-leaf tree is its leaf hash
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert root_of([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size):
    assert root_of(VECTOR_HASHES[:size]) == ROOTS[size - 1]
    assert root_at(size, VECTOR_SOURCE) == ROOTS[size - 1]
    frontier = Frontier()
    for hashed in VECTOR_HASHES[:size]:
        frontier.append(hashed)
    assert frontier.root() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_known_inclusion_proofs(index, size, proof):
    expected = unhex(proof)
    assert inclusion_proof(index, size, VECTOR_SOURCE) == expected
    verify_inclusion(VECTOR_HASHES[index], index, size, expected, ROOTS[size - 1])
    if expected:
        with pytest.raises(ProofError):
            verify_inclusion(VECTOR_HASHES[index], index, size, flip(expected, 0), ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS)
def test_known_consistency_proofs(first, second, proof):
    expected = unhex(proof)
    assert consistency_proof(first, second, VECTOR_SOURCE) == expected
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], expected)
    if expected:
        with pytest.raises(ProofError):
            verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], flip(expected, len(expected) - 1))


def expected_hash(item, source):
    """A node key's hash, or for a list of keys (left to right) their right-to-left fold."""
    if isinstance(item, tuple):
        return source.nodes[item]
    keys = list(item)
    current = source.nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        current = node_hash(source.nodes[key], current)
    return current


@pytest.mark.parametrize(("size", "index", "nodes"), INCLUSION_NODES)
def test_inclusion_proof_node_choice(size, index, nodes):
    source = DictNodeSource.from_leaf_hashes([leaf_hash(b"%d" % i) for i in range(size + 5)])
    recording = RecordingSource(source)
    assert inclusion_proof(index, size, recording) == [expected_hash(n, source) for n in nodes]
    assert len(recording.calls) == 1
    fetched_within(recording, size)


@pytest.mark.parametrize(("first", "second", "nodes"), CONSISTENCY_NODES)
def test_consistency_proof_node_choice(first, second, nodes):
    source = DictNodeSource.from_leaf_hashes([leaf_hash(b"%d" % i) for i in range(second + 5)])
    recording = RecordingSource(source)
    assert consistency_proof(first, second, recording) == [expected_hash(n, source) for n in nodes]
    assert len(recording.calls) == 1
    fetched_within(recording, second)


# --- exhaustive cross-checks against the reference -------------------------------------------


def test_roots_up_to_64():
    for size in range(0, 65):
        expected = ref_mth(FULL[:size])
        assert root_of(FULL[:size]) == expected
        assert root_at(size, FULL_SOURCE) == expected


def test_every_inclusion_proof_up_to_64():
    for size in range(1, 65):
        root = ref_mth(FULL[:size])
        for index in range(size):
            recording = RecordingSource(FULL_SOURCE)
            proof = inclusion_proof(index, size, recording)
            assert proof == ref_path(index, FULL[:size]), (index, size)
            assert len(recording.calls) <= 1
            fetched_within(recording, size)
            verify_inclusion(FULL[index], index, size, proof, root)
            for position in range(len(proof)):
                with pytest.raises(ProofError):
                    verify_inclusion(FULL[index], index, size, flip(proof, position), root)
            # a wrong size: a proof binds the size only through its shape (as transparency-dev probes: *2, /2)
            for wrong_size in {size * 2, size // 2} - {size}:
                if index < wrong_size:
                    with pytest.raises(ProofError):
                        verify_inclusion(FULL[index], index, wrong_size, proof, root)
            if size > 1:
                other = (index + 1) % size
                with pytest.raises(ProofError):
                    verify_inclusion(FULL[index], other, size, proof, root)
                with pytest.raises(ProofError):
                    verify_inclusion(FULL[index], index, size, proof[:-1], root)
                with pytest.raises(ProofError):
                    verify_inclusion(FULL[index], index, size, [*proof, root], root)
                with pytest.raises(ProofError):
                    verify_inclusion(FULL[other], index, size, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(FULL[index], index, size, proof, flip([root], 0)[0])


def test_every_consistency_proof_up_to_64():
    roots = [ref_mth(FULL[:size]) for size in range(65)]
    for second in range(0, 65):
        for first in range(0, second + 1):
            recording = RecordingSource(FULL_SOURCE)
            proof = consistency_proof(first, second, recording)
            expected = [] if first == 0 else ref_subproof(first, FULL[:second], True)
            assert proof == expected, (first, second)
            assert len(recording.calls) <= 1
            fetched_within(recording, second)
            verify_consistency(first, second, roots[first], roots[second], proof)
            if 0 < first < second:
                for position in range(len(proof)):
                    with pytest.raises(ProofError):
                        verify_consistency(first, second, roots[first], roots[second], flip(proof, position))
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], roots[second], proof[:-1])
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], roots[second], [*proof, roots[first]])
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[second], roots[first], proof)
                with pytest.raises(ProofError):
                    verify_consistency(first + 1, second, roots[first], roots[second], proof)
                with pytest.raises(ProofError):
                    verify_consistency(first, second * 2, roots[first], roots[second], proof)
                if first < second // 2:
                    with pytest.raises(ProofError):
                        verify_consistency(first, second // 2, roots[first], roots[second], proof)
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], roots[second], [])
            elif first == second:
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], flip([roots[second]], 0)[0], proof)


def test_every_range_proof_up_to_64():
    for size in range(1, 65):
        root = ref_span(0, size)
        for begin in range(size):
            for end in range(begin + 1, size + 1):
                recording = RecordingSource(FULL_SOURCE)
                proof = range_proof(begin, end, size, recording)
                assert proof == ref_range(begin, end, 0, size), (begin, end, size)
                assert len(recording.calls) <= 1
                fetched_within(recording, size)
                assert root_from_range(begin, end, size, FULL[begin:end], proof) == root
                if proof:
                    assert root_from_range(begin, end, size, FULL[begin:end], flip(proof, 0)) != root
                    with pytest.raises(ProofError):
                        root_from_range(begin, end, size, FULL[begin:end], proof[:-1])
                with pytest.raises(ProofError):
                    root_from_range(begin, end, size, FULL[begin:end], [*proof, root])
                changed = flip(FULL[begin:end], end - begin - 1)
                assert root_from_range(begin, end, size, changed, proof) != root


def test_full_range_needs_no_proof():
    assert range_proof(0, 64, 64, FULL_SOURCE) == []
    assert root_from_range(0, 64, 64, FULL, []) == ref_mth(FULL)
    assert range_proof(0, 0, 0, FULL_SOURCE) == []
    assert root_from_range(0, 0, 0, [], []) == EMPTY_ROOT


def test_subtree_keys():
    assert subtree_keys(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtree_keys(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    assert subtree_keys(5, 5) == []
    for lo in range(0, 40):
        for hi in range(lo, 41):
            keys = subtree_keys(lo, hi)
            covered = [leaf for level, index in keys for leaf in range(index << level, (index + 1) << level)]
            assert covered == list(range(lo, hi))
    assert subtree_hash(4, 7, FULL_SOURCE) == ref_mth(FULL[4:7])
    assert subtree_hash(0, 64, FULL_SOURCE) == ref_mth(FULL)
    with pytest.raises(ValueError):
        subtree_hash(2, 6, FULL_SOURCE)  # not a subtree of the RFC recursion


def test_bounds_errors():
    for call in (
        lambda: inclusion_proof(3, 3, FULL_SOURCE),
        lambda: inclusion_proof(0, 0, FULL_SOURCE),
        lambda: inclusion_proof(-1, 3, FULL_SOURCE),
        lambda: consistency_proof(5, 4, FULL_SOURCE),
        lambda: range_proof(0, 5, 4, FULL_SOURCE),
        lambda: range_proof(3, 3, 4, FULL_SOURCE),
        lambda: range_proof(3, 2, 4, FULL_SOURCE),
        lambda: root_from_range(0, 2, 4, FULL[:3], []),
        lambda: root_at(-1, FULL_SOURCE),
        lambda: subtree_keys(3, 2),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ProofError):
        verify_inclusion(FULL[0], 1, 1, [], FULL[0])
    with pytest.raises(ProofError):
        verify_consistency(2, 1, FULL[0], FULL[0], [])
    with pytest.raises(ProofError):
        verify_inclusion(b"short", 0, 1, [], b"short")


def test_trivial_consistency():
    assert consistency_proof(0, 10, FULL_SOURCE) == []
    assert consistency_proof(10, 10, FULL_SOURCE) == []
    verify_consistency(0, 10, EMPTY_ROOT, ref_mth(FULL[:10]), [])
    with pytest.raises(ProofError):
        verify_consistency(0, 10, EMPTY_ROOT, ref_mth(FULL[:10]), [EMPTY_ROOT])
    with pytest.raises(ProofError):
        verify_consistency(0, 10, FULL[0], ref_mth(FULL[:10]), [])
    with pytest.raises(ProofError):
        verify_consistency(10, 10, ref_mth(FULL[:10]), ref_mth(FULL[:10]), [FULL[0]])


def test_missing_nodes():
    source = DictNodeSource({key: value for key, value in FULL_SOURCE.nodes.items() if key != (0, 5)})
    with pytest.raises(MissingNode) as caught:
        inclusion_proof(4, 8, source)
    assert caught.value.key == (0, 5)
    assert isinstance(caught.value, LookupError)
    inclusion_proof(0, 8, source)  # does not need leaf 5 on its own


def test_proofs_never_fetch_leaves_beyond_the_tree():
    """The store may hold a bigger tree (or a partially filled one): proofs of size 13 ask for nothing past 13."""
    partial = DictNodeSource({key: value for key, value in FULL_SOURCE.nodes.items() if (key[1] + 1) << key[0] <= 13})
    assert root_at(13, partial) == ref_mth(FULL[:13])
    for index in range(13):
        assert inclusion_proof(index, 13, partial) == ref_path(index, FULL[:13])
    for first in range(1, 14):
        assert consistency_proof(first, 13, partial) == ref_subproof(first, FULL[:13], True)


# --- the frontier -----------------------------------------------------------------------------


def test_frontier_appends_match_root_of_and_cover_every_node_once():
    hashes = [leaf_hash(b"record %d" % i) for i in range(300)]
    frontier = Frontier()
    seen = {}
    for size, hashed in enumerate(hashes, start=1):
        for level, index, node in frontier.append(hashed):
            assert (level, index) not in seen, f"node ({level}, {index}) returned twice"
            assert (index + 1) << level == size, "a node is returned when its last leaf arrives"
            seen[(level, index)] = node
        assert frontier.size == size
        assert frontier.root() == root_of(hashes[:size])
        restored = Frontier.from_bytes(size, frontier.to_bytes())
        assert restored.root() == frontier.root() and restored.size == size
    expected_keys = {(level, index) for level in range(9) for index in range(300 >> level)}
    assert set(seen) == expected_keys
    for (level, index), node in seen.items():
        assert node == ref_mth(hashes[index << level : (index + 1) << level])


def test_frontier_state_round_trip_and_copy():
    hashes = [leaf_hash(b"%d" % i) for i in range(45)]
    frontier = Frontier()
    for hashed in hashes[:37]:
        frontier.append(hashed)
    data = frontier.to_bytes()
    assert len(data) == (37).bit_count() * HASH_SIZE
    restored = Frontier.from_bytes(37, data)
    copy = frontier.copy()
    for hashed in hashes[37:]:
        restored.append(hashed)
        frontier.append(hashed)
    assert restored.root() == frontier.root() == root_of(hashes)
    assert copy.size == 37 and copy.root() == root_of(hashes[:37])
    assert Frontier(37, copy.hashes).root() == copy.root()
    with pytest.raises(ValueError):
        Frontier.from_bytes(37, data[:-1])
    with pytest.raises(ValueError):
        Frontier.from_bytes(39, data)  # popcount 4, not 3
    with pytest.raises(ValueError):
        Frontier(3, [hashes[0]])
    assert Frontier().root() == EMPTY_ROOT
    assert Frontier.from_bytes(0, b"").root() == EMPTY_ROOT


def test_frontier_extend_matches_append():
    hashes = [leaf_hash(b"%d" % i) for i in range(200)]
    for start in (0, 1, 6, 64, 77):
        for count in (0, 1, 5, 64, 123):
            one = Frontier()
            for hashed in hashes[:start]:
                one.append(hashed)
            many = one.copy()
            for hashed in hashes[start : start + count]:
                one.append(hashed)
            many.extend(hashes[start : start + count])
            assert (many.size, many.to_bytes()) == (one.size, one.to_bytes())


# --- leaves -----------------------------------------------------------------------------------


def test_canonical_json_and_leaves():
    assert canonical_json({"b": 1, "a": [1, 2], "ç": "ã"}) == '{"a":[1,2],"b":1,"ç":"ã"}'.encode()
    assert leaf_for({"z": 1, "seq": 9}, 4) == b'{"seq":4,"z":1}'
    for bad in (float("nan"), float("inf"), {"x": float("-inf")}):
        with pytest.raises(ValueError):
            canonical_json(bad)
