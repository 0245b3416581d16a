"""RFC 6962 Merkle tree: hashing, an append-only frontier, proof generation and proof verification.

Hashing follows RFC 6962 §2.1: a leaf hash is SHA-256(0x00 || leaf), an interior node is
SHA-256(0x01 || left || right), the tree of n > 1 leaves splits at k, the largest power of two
smaller than n, and the empty tree's root is SHA-256(""). Verification follows RFC 9162
§2.1.3.2 (inclusion) and §2.1.4.2 (consistency).

Stored nodes are addressed by ``NodeKey = (level, index)``: the complete, aligned subtree over the
leaves ``[index << level, (index + 1) << level)``; level 0 is a leaf hash. Every hash a proof needs
is either such a node or the RFC 6962 hash of a range ``[lo, hi)`` whose right edge is the tree
size, which is the right-to-left fold of the range's decomposition into complete aligned subtrees
(``subtree_keys``). Proof generation therefore collects the ranges first, fetches all their nodes
with one ``NodeSource.get_nodes`` call, then hashes; it never asks for a node that covers a leaf
at or beyond the tree size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

HASH_SIZE = 32

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = _sha256(b"").digest()

NodeKey = tuple[int, int]


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf)."""
    return _sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, level by level (an odd last node moves up unchanged), O(n)."""
    level = leaf_hashes if isinstance(leaf_hashes, list | tuple) else list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        upper = [sha(prefix + left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeSource(Protocol):
    """Where proof generation reads stored nodes from."""

    def get_nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Return the hashes of ``keys`` in one batched lookup; absent keys may be missing from the result."""
        ...


class MissingNode(LookupError):
    """A node a proof needs is not in the node source."""

    def __init__(self, key: NodeKey) -> None:
        super().__init__(f"node (level {key[0]}, index {key[1]}) is missing from the tree store")
        self.key = key


class DictNodeSource:
    """An in-memory ``NodeSource`` over a dict ``{(level, index): hash}``, for tests and the verifier."""

    def __init__(self, nodes: Mapping[NodeKey, bytes] | None = None) -> None:
        self.nodes: dict[NodeKey, bytes] = dict(nodes or {})

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> DictNodeSource:
        """Every complete aligned subtree of the tree over ``leaf_hashes``."""
        source = cls()
        frontier = Frontier()
        for hashed in leaf_hashes:
            source.add(frontier.append(hashed))
        return source

    def add(self, nodes: Collection[tuple[int, int, bytes]]) -> None:
        """Store ``(level, index, hash)`` triples, as ``Frontier.append`` returns them."""
        for level, index, hashed in nodes:
            self.nodes[(level, index)] = hashed

    def get_nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        nodes = self.nodes
        return {key: nodes[key] for key in keys if key in nodes}


class Frontier:
    """The right border of an append-only tree: O(log n) hashes.

    Appending a leaf returns every complete aligned subtree it completes.
    """

    __slots__ = ("size", "_hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"frontier size must be >= 0, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} holds {size.bit_count()} hashes, got {len(hashes)}")
        for hashed in hashes:
            if len(hashed) != HASH_SIZE:
                raise ValueError(f"frontier hashes are {HASH_SIZE} bytes, got {len(hashed)}")
        self.size = size
        self._hashes = [bytes(hashed) for hashed in hashes]

    @property
    def hashes(self) -> list[bytes]:
        """The border's subtree roots, largest (leftmost) first (a copy)."""
        return list(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return ``(level, index, hash)`` for the leaf and every node it completes."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hashes are {HASH_SIZE} bytes, got {len(leaf_hash)}")
        hashes = self._hashes
        index = self.size
        current = bytes(leaf_hash)
        created = [(0, index, current)]
        level = 0
        while index & 1:
            current = _sha256(_NODE_PREFIX + hashes.pop() + current).digest()
            index >>= 1
            level += 1
            created.append((level, index, current))
        hashes.append(current)
        self.size += 1
        return created

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Add many leaf hashes at once (hashing aligned blocks level by level); returns no nodes."""
        offset = 0
        start = self.size
        for level, _index in subtree_keys(start, start + len(leaf_hashes)):
            width = 1 << level
            block = leaf_hashes[offset : offset + width]
            self._push(level, block[0] if width == 1 else root_of(block))
            offset += width

    def _push(self, level: int, subtree_root: bytes) -> None:
        """Append a complete subtree of ``2**level`` leaves; the current size must be a multiple of it."""
        hashes = self._hashes
        current = subtree_root
        size = self.size
        bit = level
        while (size >> bit) & 1:
            current = _sha256(_NODE_PREFIX + hashes.pop() + current).digest()
            bit += 1
        hashes.append(current)
        self.size = size + (1 << level)

    def root(self) -> bytes:
        """RFC 6962 root of the current tree (``EMPTY_ROOT`` when empty): the border folded right to left."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        current = hashes[-1]
        for left in reversed(hashes[:-1]):
            current = _sha256(_NODE_PREFIX + left + current).digest()
        return current

    def to_bytes(self) -> bytes:
        """The border hashes concatenated, largest subtree first."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        """Inverse of ``to_bytes``; ValueError unless ``data`` holds popcount(size) hashes."""
        if size < 0:
            raise ValueError(f"frontier size must be >= 0, got {size}")
        expected = size.bit_count() * HASH_SIZE
        if len(data) != expected:
            raise ValueError(f"a frontier of size {size} is {expected} bytes, got {len(data)}")
        return cls(size, [bytes(data[i : i + HASH_SIZE]) for i in range(0, expected, HASH_SIZE)])

    def copy(self) -> Frontier:
        """An independent copy."""
        clone = Frontier.__new__(Frontier)
        clone.size = self.size
        clone._hashes = list(self._hashes)
        return clone

    def __repr__(self) -> str:
        return f"Frontier(size={self.size})"


def subtree_keys(lo: int, hi: int) -> list[NodeKey]:
    """Decompose the leaf range ``[lo, hi)`` into maximal complete aligned subtrees, left to right."""
    if lo < 0 or hi < lo:
        raise ValueError(f"invalid leaf range [{lo}, {hi})")
    keys: list[NodeKey] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            aligned = (lo & -lo).bit_length() - 1
            if aligned < level:
                level = aligned
        keys.append((level, lo >> level))
        lo += 1 << level
    return keys


def _check_rfc_range(lo: int, hi: int) -> None:
    width = hi - lo
    if lo < 0 or width < 1:
        raise ValueError(f"invalid subtree range [{lo}, {hi})")
    if lo % (1 << (width - 1).bit_length()):
        raise ValueError(f"[{lo}, {hi}) is not a subtree of the RFC 6962 recursion (misaligned start)")


def _fetch(source: NodeSource, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The RFC 6962 hash of each range, from one ``get_nodes`` call."""
    decompositions = [subtree_keys(lo, hi) for lo, hi in ranges]
    wanted = list(dict.fromkeys(key for keys in decompositions for key in keys))
    if not wanted:
        return []
    nodes = source.get_nodes(wanted)
    hashes = []
    for keys in decompositions:
        current = None
        for key in reversed(keys):
            node = nodes.get(key)
            if node is None:
                raise MissingNode(key)
            current = node if current is None else _sha256(_NODE_PREFIX + node + current).digest()
        hashes.append(current)
    return hashes


def subtree_hash(lo: int, hi: int, source: NodeSource) -> bytes:
    """MTH(D[lo:hi]) for a range of the RFC 6962 recursion (start aligned to the next power of two of its width)."""
    _check_rfc_range(lo, hi)
    return _fetch(source, [(lo, hi)])[0]


def root_at(size: int, source: NodeSource) -> bytes:
    """The root of the tree of the first ``size`` leaves."""
    if size < 0:
        raise ValueError(f"tree size must be >= 0, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _fetch(source, [(0, size)])[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
    if size < 1 or not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _fetch(source, _inclusion_ranges(index, size))


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    outer = []
    inner = []
    lo, hi = 0, second
    whole = True  # RFC 6962's b: the subtree is the left edge of the old tree
    while True:
        if first == hi:
            if not whole:
                inner.append((lo, hi))
            break
        mid = lo + _split(hi - lo)
        if first <= mid:
            outer.append((mid, hi))
            hi = mid
        else:
            outer.append((lo, mid))
            lo = mid
            whole = False
    outer.reverse()
    return inner + outer


def consistency_proof(first: int, second: int, source: NodeSource) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(first, D[second]); empty when ``first`` is 0 or equals ``second``."""
    if first < 0 or second < first:
        raise ValueError(f"no consistency proof from tree size {first} to {second}")
    if first == 0 or first == second:
        return []
    return _fetch(source, _consistency_ranges(first, second))


def _check_range(begin: int, end: int, size: int) -> None:
    if not 0 <= begin <= end <= size:
        raise ValueError(f"leaf range [{begin}, {end}) is not within a tree of size {size}")
    if size > 0 and begin >= end:
        raise ValueError(f"leaf range [{begin}, {end}) is empty")


def _range_ranges(begin: int, end: int, size: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= begin or lo >= end:
            out.append((lo, hi))
        elif lo < begin or hi > end:
            mid = lo + _split(hi - lo)
            walk(lo, mid)
            walk(mid, hi)

    if size:
        walk(0, size)
    return out


def range_proof(begin: int, end: int, size: int, source: NodeSource) -> list[bytes]:
    """Hashes of the maximal RFC 6962 subtrees of ``[0, size)`` disjoint from ``[begin, end)``, left to right.

    With them, a verifier holding only the leaf hashes of ``[begin, end)`` recomputes the root
    (``root_from_range``). The whole tree (``begin=0, end=size``) needs none.
    """
    _check_range(begin, end, size)
    return _fetch(source, _range_ranges(begin, end, size))


class ProofError(ValueError):
    """A proof does not verify; the message says what failed."""


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    fn, sn = index, size - 1
    current = leaf_hash
    for position, sibling in enumerate(proof):
        _check_hash(f"inclusion proof element {position}", sibling)
        if sn == 0:
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            current = node_hash(current, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof for leaf {index} of {size} is too short ({len(proof)} hashes)")
    if current != root:
        raise ProofError(f"inclusion proof for leaf {index} of {size} does not reproduce the root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``first`` leaves is a prefix of the tree of ``second`` leaves (RFC 9162 §2.1.4.2)."""
    if first < 0 or second < first:
        raise ProofError(f"tree size {second} cannot extend tree size {first}")
    _check_hash("first root", first_root)
    _check_hash("second root", second_root)
    for position, element in enumerate(proof):
        _check_hash(f"consistency proof element {position}", element)
    if first == second:
        if proof:
            raise ProofError("a consistency proof between equal tree sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for tree size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        if first_root != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is not SHA-256 of the empty string")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from tree size {first} to {second}")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {first} to {second} is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {first} to {second} is too short ({len(proof)} hashes)")
    if fr != first_root:
        raise ProofError(f"consistency proof from {first} to {second} does not reproduce the first root")
    if sr != second_root:
        raise ProofError(f"consistency proof from {first} to {second} does not reproduce the second root")


def root_from_range(begin: int, end: int, size: int, leaf_hashes: Sequence[bytes], proof: Sequence[bytes]) -> bytes:
    """The root of a tree of ``size`` leaves from the leaf hashes of ``[begin, end)`` and their ``range_proof``."""
    _check_range(begin, end, size)
    if len(leaf_hashes) != end - begin:
        raise ValueError(f"leaf range [{begin}, {end}) needs {end - begin} leaf hashes, got {len(leaf_hashes)}")
    expected = len(_range_ranges(begin, end, size))
    if len(proof) != expected:
        raise ProofError(f"range proof for [{begin}, {end}) of {size} has {len(proof)} hashes, expected {expected}")
    for position, element in enumerate(proof):
        _check_hash(f"range proof element {position}", element)
    if size == 0:
        return EMPTY_ROOT
    elements = iter(proof)

    def walk(lo: int, hi: int) -> bytes:
        if hi <= begin or lo >= end:
            return next(elements)
        if lo >= begin and hi <= end:
            if lo == begin and hi == end:
                return root_of(leaf_hashes)
            return root_of(leaf_hashes[lo - begin : hi - begin])
        mid = lo + _split(hi - lo)
        left = walk(lo, mid)
        return node_hash(left, walk(mid, hi))

    return walk(0, size)
