"""The Merkle tree (RFC 9162 §2.1) as stored subtree hashes: CT's test vectors, and a property
test holding every proof to the RFC's verification algorithms (in `inventory.monitor`, written
from the RFC independently of the prover in `domain.merkle`)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.domain import merkle
from inventory.monitor import leaf_hash, verify_consistency, verify_inclusion

# The leaf inputs and roots of the Certificate Transparency / Trillian test data (RFC 6962 hashing,
# which RFC 9162 keeps).
LEAF_INPUTS = [
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
INCLUSION = {  # (leaf index, tree size) -> path
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (0, 1): [],
}
CONSISTENCY = {  # (first, second) -> path
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (6, 7): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


class Store:
    """Stored hashes in a list, as the log_hashes table holds them."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.hashes, _ = merkle.append_leaves(0, [], [merkle.leaf_hash(x) for x in leaves])

    def read(self, indexes: list[int] | tuple[int, ...]) -> list[bytes]:  # type: ignore[override]
        return [self.hashes[i] for i in indexes]


def test_hashing_is_rfc_9162() -> None:
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        merkle.node_hash(b"l" * 32, b"r" * 32)
        == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    )
    assert merkle.EMPTY_ROOT.hex() == ROOTS[0]


def test_roots_of_every_prefix_match_the_ct_vectors() -> None:
    store = Store(LEAF_INPUTS)
    assert len(store.hashes) == merkle.stored_hash_count(8)
    for size, root in enumerate(ROOTS):
        assert merkle.tree_hash(size, store.read).hex() == root
        hashes = [merkle.leaf_hash(x) for x in LEAF_INPUTS[:size]]
        assert merkle.root_from_leaves(hashes).hex() == root


def test_inclusion_proofs_match_the_ct_vectors_and_verify() -> None:
    store = Store(LEAF_INPUTS)
    for (index, size), expected in INCLUSION.items():
        path = merkle.inclusion_proof(index, size, store.read)
        assert [p.hex() for p in path] == expected
        root = bytes.fromhex(ROOTS[size])
        assert verify_inclusion(index, size, leaf_hash(LEAF_INPUTS[index]), path, root)


def test_consistency_proofs_match_the_ct_vectors_and_verify() -> None:
    store = Store(LEAF_INPUTS)
    for (first, second), expected in CONSISTENCY.items():
        path = merkle.consistency_proof(first, second, store.read)
        assert [p.hex() for p in path] == expected
        roots = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
        assert verify_consistency(first, second, *roots, path)


def test_appending_in_batches_stores_the_same_hashes_as_one_by_one() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(37)]
    whole, _ = merkle.append_leaves(0, [], leaves)
    stored: list[bytes] = []
    size, frontier = 0, []
    for batch in (leaves[:1], leaves[1:5], leaves[5:6], leaves[6:30], leaves[30:]):
        assert frontier == [stored[i] for i in merkle.frontier_indexes(size)]
        more, frontier = merkle.append_leaves(size, frontier, batch)
        assert len(stored) == merkle.stored_hash_count(size)
        stored += more
        size += len(batch)
    assert stored == whole
    for count in range(200):
        try:
            size = merkle.size_for_hash_count(count)
        except ValueError:
            continue
        assert merkle.stored_hash_count(size) == count


def _flip(data: bytes, position: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_proof_verifies_and_any_flipped_byte_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300), label="size")
    leaves = [f"record {i}".encode() for i in range(size)]
    store = Store(leaves)
    root = merkle.tree_hash(size, store.read)
    assert root == merkle.root_from_leaves([merkle.leaf_hash(x) for x in leaves])

    index = data.draw(st.integers(0, size - 1), label="index")
    path = merkle.inclusion_proof(index, size, store.read)
    assert len(path) <= size.bit_length()
    leaf = leaf_hash(leaves[index])
    assert verify_inclusion(index, size, leaf, path, root)
    flip_at = data.draw(st.integers(0, 10_000), label="flip_at")
    assert not verify_inclusion(index, size, _flip(leaf, flip_at), path, root)
    assert not verify_inclusion(index, size, leaf, path, _flip(root, flip_at))
    if path:
        which = data.draw(st.integers(0, len(path) - 1), label="which")
        bad = [*path[:which], _flip(path[which], flip_at), *path[which + 1 :]]
        assert not verify_inclusion(index, size, leaf, bad, root)
        assert not verify_inclusion(index, size, leaf, path[:-1], root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        assert not verify_inclusion(other, size, leaf, path, root)

    first = data.draw(st.integers(1, size), label="first")
    old_root = merkle.tree_hash(first, store.read)
    proof = merkle.consistency_proof(first, size, store.read)
    assert verify_consistency(first, size, old_root, root, proof)
    assert not verify_consistency(first, size, _flip(old_root, flip_at), root, proof)
    assert not verify_consistency(first, size, old_root, _flip(root, flip_at), proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which_c")
        bad = [*proof[:which], _flip(proof[which], flip_at), *proof[which + 1 :]]
        assert not verify_consistency(first, size, old_root, root, bad)
