"""A seed scenario as its data files describe it: reference data, goods-received notes, the weapon
register (expanded from compact batches), ammunition lots, and the story of what happened next.

Pure reading and expansion: nothing here touches the database. Times in the files are dates,
or relative to the moment of loading ("400 days ago", "in 30 days"), so a scenario's overdue
states are real whenever it is loaded."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"
# A scaled-down load keeps at least this many weapons of every batch; the story names only
# serials among them.
MIN_BATCH = 40
_RELATIVE = re.compile(r"^\s*(?:(\d+)\s+days?\s+ago|in\s+(\d+)\s+days?)\s*$")
_DAY_TIME = time(9, 0, tzinfo=UTC)  # a dated paper record is taken as the morning of that day


class ScenarioError(ValueError):
    """The data files are inconsistent; the message names the file and the entry."""


@dataclass(frozen=True)
class Batch:
    id: str
    item_type: str
    manufacturer: str
    country: str
    year: int
    prefix: str
    first: int
    count: int
    receipt: str
    origin: str | None = None
    digits: int = 5

    def serial(self, index: int) -> str:
        return f"{self.prefix}{self.first + index:0{self.digits}d}"


@dataclass(frozen=True)
class LotEntry:
    lot_number: str
    item_type: str
    manufacturer: str
    year_of_manufacture: int
    quantity: int
    receipt: str


@dataclass(frozen=True)
class ReceiptNote:
    document_ref: str
    source: str
    destination: str
    received_at: datetime


@dataclass(frozen=True)
class Marking:
    """How a registered weapon is marked: enough to name it unambiguously in a line."""

    serial: str
    manufacturer: str
    item_type: str


@dataclass
class Scenario:
    name: str
    reference: dict[str, list[dict[str, Any]]]
    receipts: list[ReceiptNote]
    batches: list[Batch]
    lots: list[LotEntry]
    steps: list[dict[str, Any]]
    now: datetime
    scale: float = 1.0
    counts: dict[str, int] = field(default_factory=dict)

    def batch_count(self, batch: Batch) -> int:
        """How many weapons of `batch` this load registers (all of them at scale 1)."""
        if self.scale >= 1:
            return batch.count
        return min(batch.count, max(MIN_BATCH, round(batch.count * self.scale)))

    def weapons_of(self, receipt: str) -> list[tuple[Batch, int]]:
        """The (batch, index) of every weapon the receipt `receipt` registers."""
        return [
            (batch, index)
            for batch in self.batches
            if batch.receipt == receipt
            for index in range(self.batch_count(batch))
        ]

    def lots_of(self, receipt: str) -> list[LotEntry]:
        return [lot for lot in self.lots if lot.receipt == receipt]

    def weapon_total(self) -> int:
        return sum(self.batch_count(batch) for batch in self.batches)

    def marking(self, serial: str) -> Marking:
        """The registered weapon `serial` names in this scenario."""
        for batch in self.batches:
            if serial.startswith(batch.prefix):
                index = int(serial.removeprefix(batch.prefix)) - batch.first
                if 0 <= index < self.batch_count(batch):
                    return Marking(serial, batch.manufacturer, batch.item_type)
        raise ScenarioError(f"story names serial {serial}, which no batch registers at this scale")

    def select(self, picks: list[dict[str, Any]]) -> list[Marking]:
        """Weapons named by serial (`{serials: [...]}`) or in bulk (`{batch, first, count}`)."""
        chosen: list[Marking] = []
        for pick in picks:
            if "serials" in pick:
                chosen += [self.marking(str(serial)) for serial in pick["serials"]]
                continue
            batch = self._batch(pick["batch"])
            first, count = int(pick.get("first", 0)), int(pick["count"])
            if self.scale < 1:  # a scaled pick keeps at least 10 (or all, if fewer)
                first, count = (
                    int(first * self.scale),
                    max(min(count, 10), round(count * self.scale)),
                )
            if first + count > self.batch_count(batch):
                raise ScenarioError(
                    f"story picks weapons {first}..{first + count - 1} of batch {batch.id}, "
                    f"which has {self.batch_count(batch)}"
                )
            chosen += [
                Marking(batch.serial(i), batch.manufacturer, batch.item_type)
                for i in range(first, first + count)
            ]
        return chosen

    def lot_type(self, lot_number: str) -> str:
        for lot in self.lots:
            if lot.lot_number == lot_number:
                return lot.item_type
        raise ScenarioError(f"story names lot {lot_number}, which lots.csv does not list")

    def at(self, value: Any, where: str) -> datetime:
        return moment(value, self.now, where)

    def _batch(self, batch_id: str) -> Batch:
        for batch in self.batches:
            if batch.id == batch_id:
                return batch
        raise ScenarioError(f"story names batch {batch_id!r}, which weapons.yaml does not list")


def moment(value: Any, now: datetime, where: str) -> datetime:
    """A time from a data file: a date (09:00 UTC that day), an aware timestamp, or relative to
    `now` ("N days ago", "in N days")."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScenarioError(f"{where}: {value} has no UTC offset")
        return value
    if isinstance(value, date):
        return datetime.combine(value, _DAY_TIME)
    match = _RELATIVE.match(str(value))
    if match is None:
        raise ScenarioError(f"{where}: {value!r} is not a date, 'N days ago' or 'in N days'")
    ago, ahead = match.groups()
    return now - timedelta(days=int(ago)) if ago else now + timedelta(days=int(ahead))


def read(name: str, now: datetime, *, scale: float = 1.0, seeds_dir: Path = SEEDS_DIR) -> Scenario:
    """Read the scenario in `seeds_dir/name` and check that its files agree with each other."""
    folder = seeds_dir / name
    if not folder.is_dir():
        raise ScenarioError(f"no scenario {name!r} in {seeds_dir}")
    if not 0 < scale <= 1:
        raise ScenarioError(f"scale must be in (0, 1], not {scale}")
    reference = _yaml(folder / "reference.yaml")
    receipts = [
        ReceiptNote(
            r["document_ref"],
            r["from"],
            r["to"],
            moment(r["received_at"], now, f"receipts.yaml {r['document_ref']}"),
        )
        for r in _yaml(folder / "receipts.yaml")["receipts"]
    ]
    batches = [Batch(**b) for b in _yaml(folder / "weapons.yaml")["batches"]]
    with (folder / "lots.csv").open(newline="", encoding="utf-8") as handle:
        lots = [
            LotEntry(
                row["lot_number"],
                row["item_type"],
                row["manufacturer"],
                int(row["year_of_manufacture"]),
                int(row["quantity"]),
                row["receipt"],
            )
            for row in csv.DictReader(handle)
        ]
    steps = _yaml(folder / "story.yaml")["steps"]
    scenario = Scenario(name, reference, receipts, batches, lots, steps, now, scale)
    _check(scenario)
    return scenario


def _yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _check(scenario: Scenario) -> None:
    documents = {r.document_ref for r in scenario.receipts}
    for batch in scenario.batches:
        if batch.receipt not in documents:
            raise ScenarioError(f"weapons.yaml {batch.id}: no receipt {batch.receipt}")
    for lot in scenario.lots:
        if lot.receipt not in documents:
            raise ScenarioError(f"lots.csv {lot.lot_number}: no receipt {lot.receipt}")
    prefixes = sorted(batch.prefix for batch in scenario.batches)
    for shorter, longer in zip(prefixes, prefixes[1:], strict=False):
        if longer.startswith(shorter):
            raise ScenarioError(f"weapons.yaml: serial prefixes {shorter} and {longer} overlap")
