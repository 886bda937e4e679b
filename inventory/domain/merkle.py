"""The Merkle tree over the audit log (RFC 9162 §2.1), kept as stored complete-subtree hashes.

Hashing is RFC 9162's: a leaf is SHA-256(0x00 ‖ the record's stored canonical bytes), an interior
node SHA-256(0x01 ‖ left ‖ right), and the empty tree hashes to SHA-256 of nothing. Leaf index
i is the record of seq i + 1.

Storage follows Go's golang.org/x/mod/sumdb/tlog (re-written here, not copied): every complete
subtree of 2^level leaves starting at leaf n·2^level has one hash, at the position
`stored_hash_index(level, n)` of an append-only sequence. Appending leaf n adds the leaf's hash and
the hashes of the subtrees it completes, at the next consecutive positions, so the tree of size n
is exactly the first `stored_hash_count(n)` stored hashes. Any tree head, inclusion proof or
consistency proof for a size up to the stored one then needs O(log n) stored hashes.

Pure: storage is reached through a `read(indexes) -> hashes` function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Read = Callable[[Sequence[int]], Sequence[bytes]]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def stored_hash_index(level: int, n: int) -> int:
    """Where the hash of the n-th complete subtree of 2^level leaves is stored."""
    for _ in range(level):
        n = 2 * n + 1  # the last leaf of that subtree...
    index = 0
    while n > 0:  # ...is stored after the hashes of every leaf and subtree before it
        index += n
        n >>= 1
    return index + level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of `size` leaves stores: 2·size − popcount(size)."""
    return 2 * size - bin(size).count("1")


def size_for_hash_count(count: int) -> int:
    """The tree size whose stored hashes are exactly the first `count`; ValueError if none is."""
    low, high = 0, count
    while low < high:
        middle = (low + high + 1) // 2
        if stored_hash_count(middle) <= count:
            low = middle
        else:
            high = middle - 1
    if stored_hash_count(low) != count:
        raise ValueError(f"{count} stored hashes are not a whole tree (a partial append)")
    return low


def frontier_indexes(size: int) -> list[int]:
    """The stored indexes of the complete subtrees that make up a tree of `size`, largest first:
    what `append_leaves` needs to carry on from `size`."""
    return [
        stored_hash_index(level, (size >> level) - 1)
        for level in range(size.bit_length() - 1, -1, -1)
        if size >> level & 1
    ]


def append_leaves(
    size: int, frontier: Sequence[bytes], leaves: Iterable[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """(the hashes to store, in order from position `stored_hash_count(size)`; the new frontier)
    when the leaf hashes `leaves` are appended to a tree of `size` whose `frontier_indexes` hold
    `frontier`."""
    stack = list(frontier)
    if len(stack) != bin(size).count("1"):
        raise ValueError(f"a tree of size {size} has {bin(size).count('1')} frontier hashes")
    stored: list[bytes] = []
    for leaf in leaves:
        stored.append(leaf)
        digest = leaf
        completed = size
        while completed & 1:  # each trailing 1 bit completes a subtree with its left neighbour
            digest = node_hash(stack.pop(), digest)
            stored.append(digest)
            completed >>= 1
        stack.append(digest)
        size += 1
    return stored, stack


def _largest_power_below(n: int) -> tuple[int, int]:
    """(k, level): the largest power of two k = 2^level strictly less than n (n ≥ 2)."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def _subtree_indexes(low: int, high: int, need: list[int]) -> None:
    """The stored indexes whose hashes combine into the hash of leaves [low, high)."""
    while low < high:
        k, level = _largest_power_below(high - low + 1)
        need.append(stored_hash_index(level, low >> level))
        low += k


def _subtree_hash(low: int, high: int, hashes: list[bytes]) -> bytes:
    """Consume from the front of `hashes` what `_subtree_indexes(low, high)` asked for and
    combine it (the left parts are complete subtrees; the right edge is folded in from the end)."""
    parts = 0
    while low < high:
        k, _ = _largest_power_below(high - low + 1)
        parts += 1
        low += k
    taken = hashes[:parts]
    del hashes[:parts]
    digest = taken[-1]
    for left in reversed(taken[:-1]):
        digest = node_hash(left, digest)
    return digest


def tree_hash(size: int, read: Read) -> bytes:
    """The root hash of the first `size` leaves (RFC 9162 MTH)."""
    if size == 0:
        return EMPTY_ROOT
    need: list[int] = []
    _subtree_indexes(0, size, need)
    return _subtree_hash(0, size, list(read(need)))


def _inclusion_indexes(low: int, high: int, index: int, need: list[int]) -> None:
    if high - low == 1:
        return
    k, _ = _largest_power_below(high - low)
    if index < low + k:
        _inclusion_indexes(low, low + k, index, need)
        _subtree_indexes(low + k, high, need)
    else:
        _subtree_indexes(low, low + k, need)
        _inclusion_indexes(low + k, high, index, need)


def _inclusion_path(low: int, high: int, index: int, hashes: list[bytes]) -> list[bytes]:
    if high - low == 1:
        return []
    k, _ = _largest_power_below(high - low)
    if index < low + k:
        path = _inclusion_path(low, low + k, index, hashes)
        sibling = _subtree_hash(low + k, high, hashes)
    else:
        sibling = _subtree_hash(low, low + k, hashes)
        path = _inclusion_path(low + k, high, index, hashes)
    return [*path, sibling]


def inclusion_proof(index: int, size: int, read: Read) -> list[bytes]:
    """The RFC 9162 inclusion path of leaf `index` in the tree of `size` leaves, leaf side
    first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    need: list[int] = []
    _inclusion_indexes(0, size, index, need)
    return _inclusion_path(0, size, index, list(read(need))) if need else []


def _consistency_indexes(low: int, high: int, first: int, need: list[int]) -> None:
    if first == high:
        if low != 0:
            _subtree_indexes(low, high, need)
        return
    k, _ = _largest_power_below(high - low)
    if first <= low + k:
        _consistency_indexes(low, low + k, first, need)
        _subtree_indexes(low + k, high, need)
    else:
        _subtree_indexes(low, low + k, need)
        _consistency_indexes(low + k, high, first, need)


def _consistency_path(low: int, high: int, first: int, hashes: list[bytes]) -> list[bytes]:
    if first == high:
        return [] if low == 0 else [_subtree_hash(low, high, hashes)]
    k, _ = _largest_power_below(high - low)
    if first <= low + k:
        path = _consistency_path(low, low + k, first, hashes)
        other = _subtree_hash(low + k, high, hashes)
    else:
        other = _subtree_hash(low, low + k, hashes)
        path = _consistency_path(low + k, high, first, hashes)
    return [*path, other]


def consistency_proof(first: int, second: int, read: Read) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of `second` leaves extends that of `first`."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    need: list[int] = []
    _consistency_indexes(0, second, first, need)
    return _consistency_path(0, second, first, list(read(need))) if need else []


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH computed directly from all leaf hashes, as RFC 9162 defines it (for checks and tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k, _ = _largest_power_below(len(leaves))
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))
