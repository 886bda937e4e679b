"""The accountability report on paper: a PDF with a table per depot, the totals, every weapon
counted as unaccounted for, the as-of time, and the audit log's head and latest signed checkpoint,
so that a reader can tie the printed figures to the log."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from ..domain.actors import Actor
from ..settings import Settings
from . import audit_log, checkpoints, reports
from .checkpoints import Checkpoint
from .reports import DepotAccount, Report, UnaccountedWeapon

ROWS = (
    ("On the books", "on_books"),
    ("In store", "in_store"),
    ("Issued", "issued"),
    ("In transit", "in_transit"),
    ("Lost", "lost"),
    ("Unaccounted", "unaccounted"),
)
GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("LINEBELOW", (0, 0), (-1, 0), 1, colors.black),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.grey),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


@dataclass(frozen=True)
class PaperReport:
    """Everything the PDF prints, read in one place."""

    report: Report
    unaccounted: list[UnaccountedWeapon]
    head_seq: int
    head_hash: str
    checkpoint: Checkpoint | None
    printed_at: datetime
    printed_by: str


def gather(
    session: Session,
    actor: Actor,
    settings: Settings,
    depots: list[str] | None,
    as_of: datetime | None,
    now: datetime,
) -> PaperReport:
    """The report and its unaccounted weapons for the same depots and as-of time, with the
    audit log's head and latest checkpoint as they stand when printed."""
    report = reports.accountability(session, actor, settings, depots, as_of)
    unaccounted = reports.unaccounted_weapons(session, actor, settings, depots, report.as_of)
    head_seq, head_hash = audit_log.head(session)
    return PaperReport(
        report,
        unaccounted,
        head_seq,
        head_hash,
        checkpoints.latest(session),
        now,
        actor.name,
    )


def figure(n: int) -> str:
    return f"{n:,}"


def rate(value: float) -> str:
    return f"{value * 100:.2f} %"


def _account_table(account: DepotAccount) -> Table:
    rows: list[Sequence[str]] = [["", "Weapons", "Rounds"]]
    for label, name in ROWS:
        rows.append([label, figure(account.weapons[name]), figure(account.ammunition[name])])
    rows.append(["Verified within policy", figure(account.weapons["verified_within_policy"]), "—"])
    table = Table(rows, colWidths=[60 * mm, 35 * mm, 35 * mm], hAlign="LEFT")
    table.setStyle(GRID)
    return table


def _open_cases(account: DepotAccount, style: Any) -> Paragraph:
    cases = ", ".join(f"{kind} {n}" for kind, n in sorted(account.open_discrepancies.items()))
    return Paragraph(f"Open discrepancies: {cases or 'none'}", style)


def render(paper: PaperReport) -> bytes:
    """The PDF's bytes."""
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)
    as_of = audit_log.timestamp(paper.report.as_of)
    story: list[Any] = [
        Paragraph("Accountability report", styles["Title"]),
        Paragraph(f"As of {as_of}", styles["Heading2"]),
        Paragraph(f"Printed {audit_log.timestamp(paper.printed_at)} by {paper.printed_by}.", body),
        Paragraph(f"Audit log head: seq {paper.head_seq}, hash {paper.head_hash}", small),
    ]
    if paper.checkpoint is not None:
        c = paper.checkpoint
        story.append(
            Paragraph(
                f"Latest signed checkpoint: seq {c.seq}, hash {c.hash}, signed {c.at}, "
                f"key {c.key_id}, signature {c.signature}",
                small,
            )
        )
    else:
        story.append(Paragraph("Latest signed checkpoint: none yet", small))
    story.append(Spacer(1, 4 * mm))
    for account in [*paper.report.depots, paper.report.totals]:
        name = "All depots" if account is paper.report.totals else f"Depot {account.depot}"
        story.append(
            Paragraph(
                f"{name}: accountability rate {rate(account.accountability_rate)} (weapons), "
                f"{rate(account.rounds_accountability_rate)} (rounds)",
                styles["Heading3"],
            )
        )
        story.append(_account_table(account))
        story.append(_open_cases(account, small))
    story.append(
        Paragraph(f"Unaccounted weapons ({figure(len(paper.unaccounted))})", styles["Heading2"])
    )
    if paper.unaccounted:
        rows: list[Sequence[str]] = [
            ["Depot", "Serial", "Maker", "Type", "Held by", "Why", "Since"]
        ]
        rows += [
            [
                u.depot,
                u.serial,
                u.manufacturer,
                u.item_type,
                u.holder,
                u.reason,
                u.since.strftime("%Y-%m-%d"),
            ]
            for u in paper.unaccounted
        ]
        table = Table(rows, repeatRows=1, hAlign="LEFT")
        table.setStyle(GRID)
        table.setStyle(
            TableStyle([("ALIGN", (0, 0), (-1, -1), "LEFT"), ("FONTSIZE", (0, 0), (-1, -1), 7)])
        )
        story.append(table)
    else:
        story.append(Paragraph("None.", body))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Accountability report as of {as_of}",
        author="Stockpile",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    document.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def _footer(canvas: Any, document: Any) -> None:
    canvas.saveState()
    canvas.setFont("Helvetica", 7)
    canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"page {document.page}")
    canvas.restoreState()
