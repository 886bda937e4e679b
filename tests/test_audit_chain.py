"""The hash chain's verifier and the checkpoint message, without a database."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.domain.audit_chain import (
    GENESIS_HASH,
    INDEXED_FIELDS,
    Pin,
    canonical_bytes,
    canonical_parts,
    chain_hash,
    checkpoint_message,
    verify_chain,
)

AT = "2026-11-28T10:00:00.000000+00:00"


@dataclass(frozen=True)
class Record:
    seq: int
    body: bytes
    prev_hash: str
    hash: str
    columns: dict[str, Any]

    def indexed_fields(self) -> dict[str, Any]:
        return {name: value for name, value in self.columns.items() if name != "seq"}


def chain(length: int) -> list[Record]:
    records, prev = [], GENESIS_HASH
    for seq in range(1, length + 1):
        columns = {
            "seq": seq,
            "actor": "alice",
            "role": "admin",
            "action": "depot.create",
            "subject": f"depot:D-{seq}",
            "request_id": f"r{seq}",
            "recorded_at": AT,
        }
        body = canonical_bytes({**columns, "changes": {"code": f"D-{seq}"}})
        digest = chain_hash(prev, body)
        records.append(Record(seq, body, prev, digest, columns))
        prev = digest
    return records


def verdict_of(records: list[Record], pins: list[Pin] | None = None) -> Any:
    head = records[-1] if records else None
    return verify_chain(
        records, head.seq if head else 0, head.hash if head else GENESIS_HASH, pins=pins or []
    )


def test_an_untouched_chain_verifies() -> None:
    records = chain(5)
    verdict = verdict_of(records)
    assert verdict.ok and verdict.length == 5 and verdict.head_hash == records[-1].hash
    assert verdict.report() == {
        "ok": True,
        "length": 5,
        "head": {"seq": 5, "hash": records[-1].hash},
    }
    assert verdict_of([]).ok


def test_the_canonical_bytes_are_versioned_sorted_compact_json() -> None:
    assert canonical_bytes({"b": 1, "a": "é"}) == b'stockpile-audit/1\n{"a":"\xc3\xa9","b":1}'
    assert set(INDEXED_FIELDS) == set(chain(1)[0].columns)


def test_each_kind_of_damage_is_named_at_its_first_bad_seq() -> None:
    records = chain(6)
    head = records[-1]
    r3 = records[2]
    cases = {
        "edited": [
            *records[:2],
            dataclasses.replace(r3, body=r3.body.replace(b"D-3", b"D-X")),
            *records[3:],
        ],
        "deleted": records[:2] + records[3:],
        "reordered": [
            *records[:2],
            dataclasses.replace(records[4], seq=3),
            records[3],
            dataclasses.replace(r3, seq=5),
            records[5],
        ],
        "column": [
            *records[:2],
            dataclasses.replace(r3, columns={**r3.columns, "actor": "mallory"}),
            *records[3:],
        ],
    }
    expected = {
        "edited": "(edited)",
        "deleted": "(deleted)",
        "reordered": "(reordered)",
        "column": "column actor",
    }
    for name, damaged in cases.items():
        verdict = verify_chain(damaged, head.seq, head.hash)
        assert not verdict.ok and verdict.first_bad_seq == 3, name
        assert expected[name] in str(verdict.reason), (name, verdict.reason)


def test_a_record_rehashed_alone_breaks_the_link_to_the_next() -> None:
    records = chain(4)
    body = records[1].body.replace(b'"code":"D-2"', b'"code":"D-X"')
    records[1] = dataclasses.replace(records[1], body=body, hash=chain_hash(records[0].hash, body))
    verdict = verify_chain(records, 4, records[-1].hash)
    assert verdict.first_bad_seq == 3 and "record 2 was edited and re-hashed" in str(verdict.reason)


def test_a_cut_tail_is_caught_by_the_head_or_by_a_checkpoint_beyond_it() -> None:
    records = chain(6)
    verdict = verify_chain(records[:4], 6, records[-1].hash)
    assert verdict.first_bad_seq == 5 and "(truncated)" in str(verdict.reason)
    # Head rewound too: only a checkpoint past the new end still remembers the tail.
    assert verify_chain(records[:4], 4, records[3].hash).ok
    pin = Pin(5, records[4].hash, "checkpoint of seq 5")
    verdict = verify_chain(records[:4], 4, records[3].hash, pins=[pin])
    assert verdict.first_bad_seq == 5 and "short of the checkpoint of seq 5" in str(verdict.reason)


def test_head_that_disagrees_with_the_log_is_named() -> None:
    records = chain(3)
    assert verify_chain(records, 2, records[1].hash).first_bad_seq == 3
    verdict = verify_chain(records, 3, "f" * 64)
    assert verdict.first_bad_seq == 3 and "(head edited)" in str(verdict.reason)


def test_a_consistently_rehashed_tail_is_caught_by_an_earlier_checkpoint() -> None:
    records = chain(8)
    pins = [Pin(2, records[1].hash, "checkpoint A"), Pin(5, records[4].hash, "checkpoint B")]
    forged, prev = records[:3], records[2].hash
    for record in records[3:]:
        body = record.body.replace(b'"code":"D-4"', b'"code":"D-X"')
        forged.append(
            dataclasses.replace(record, body=body, prev_hash=prev, hash=chain_hash(prev, body))
        )
        prev = forged[-1].hash
    assert verify_chain(forged, 8, prev).ok  # the chain alone cannot tell
    verdict = verify_chain(forged, 8, prev, pins=pins)
    assert not verdict.ok and verdict.first_bad_seq == 5
    assert "checkpoint B: records 3 to 5 were rewritten" in str(verdict.reason)
    assert "(forged)" in str(verdict.reason)


def test_a_checkpoint_whose_signature_fails_is_reported_at_its_seq() -> None:
    records = chain(3)
    pin = Pin(2, records[1].hash, "checkpoint of seq 2", problem="its signature does not verify")
    verdict = verify_chain(records, 3, records[-1].hash, pins=[pin])
    assert verdict.first_bad_seq == 2 and "signature does not verify" in str(verdict.reason)


def test_a_segment_is_verified_from_a_known_point() -> None:
    records = chain(6)
    after = (records[2].seq, records[2].hash)
    assert verify_chain(records[3:], 6, records[-1].hash, after=after).ok
    wrong = (3, "a" * 64)
    assert verify_chain(records[3:], 6, records[-1].hash, after=wrong).first_bad_seq == 4


def test_the_checkpoint_message_is_the_documented_text() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    expected = f"stockpile-audit-checkpoint/1\n42\n{digest}\n{AT}\n".encode("ascii")
    assert checkpoint_message(42, digest, AT) == expected
    for seq, digest_, at in [(0, digest, AT), (1, digest.upper(), AT), (1, digest, "yesterday")]:
        with pytest.raises(ValueError):
            checkpoint_message(seq, digest_, at)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    entry=st.dictionaries(st.text().filter(lambda k: k != "seq"), JSON, max_size=8),
    seq=st.integers(min_value=1, max_value=2**62),
)
def test_the_parts_around_a_seq_make_the_canonical_bytes(entry: dict[str, Any], seq: int) -> None:
    before, after = canonical_parts(entry)
    assert before + str(seq).encode("ascii") + after == canonical_bytes({**entry, "seq": seq})
