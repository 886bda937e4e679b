"""`inventory worker`: the process that delivers alerts and runs the periodic checks.

Each pass fans new outbox events out to subscriptions, delivers what is due, runs the sweep every
Settings.sweep_interval, and signs an audit checkpoint every Settings.checkpoint_interval (when
the log has grown), publishing it to monitors as `audit.checkpoint`. SIGTERM or SIGINT lets the
current delivery finish, then the worker exits 0. A failing pass is logged and retried on the
next one: the database may be restarting, and the worker must outlive that.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType, ModuleType
from typing import Any

from sqlalchemy.orm import Session

from .clock import utcnow
from .db.engine import make_engine, make_session_factory
from .domain.actors import operator
from .services import audit_log, delivery, outbox
from .services.unit_of_work import Context, UnitOfWork, run_write
from .settings import Settings

log = logging.getLogger(__name__)
DELIVERIES_PER_PASS = 100
CHECKPOINT_EVENT = "audit.checkpoint"


def _optional(module: str) -> ModuleType | None:
    """A service module another part of the system provides, or None if it is not there yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return None


def checkpoint_and_publish(uow: UnitOfWork) -> Any:
    """Sign a checkpoint and queue it for monitors as `audit.checkpoint` (unless signing already
    did), so that tampering is provable outside the database's owner."""
    checkpoints = importlib.import_module("inventory.services.checkpoints")
    made = checkpoints.make_checkpoint(uow)
    if not any(event["type"] == CHECKPOINT_EVENT for event in uow.events):
        # The chain checkpoint, and the transparency log's signed tree head (C2SP note) with it.
        outbox.publish(uow, CHECKPOINT_EVENT, {**made.as_json(), "tree_head": made.tree_head})
    return made


class Worker:
    """One worker process's loop. `clock` and `post` are parameters so tests can drive it."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: Session | None = None,
        clock: Callable[[], datetime] = utcnow,
        post: delivery.Post = delivery.post_webhook,
    ) -> None:
        self.settings = settings
        self._engine = None
        if session is None:
            self._engine = make_engine(settings.database_url)
            session = make_session_factory(self._engine)()
        self.session = session
        self.clock = clock
        self.post = post
        self.context = Context(actor=operator("worker"), settings=settings)
        self.stopping = threading.Event()
        self._next_sweep: datetime | None = None
        self._next_checkpoint: datetime | None = None

    def run(self, *, once: bool = False) -> None:
        """Work until SIGTERM/SIGINT (or one pass with `once`)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        log.info("worker started")
        try:
            while not self.stopping.is_set():
                try:
                    busy = self.run_pass()
                except Exception:
                    log.exception("worker pass failed; retrying on the next pass")
                    self.session.rollback()
                    busy = False
                if once:
                    break
                if not busy:
                    self.stopping.wait(self.settings.worker_poll_interval.total_seconds())
        finally:
            self.session.close()
            if self._engine is not None:
                self._engine.dispose()
        log.info("worker stopped")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current delivery, then stopping", signum)
        self.stopping.set()

    def run_pass(self) -> bool:
        """One pass; True if there may be more to do right away."""
        self.run_periodic_checks()
        dispatched = delivery.fan_out(self.session, self.clock())
        delivered = self.deliver_due(DELIVERIES_PER_PASS)
        return dispatched == delivery.FAN_OUT_BATCH or delivered == DELIVERIES_PER_PASS

    def deliver_due(self, limit: int) -> int:
        """Deliver up to `limit` due deliveries, one at a time; return how many were attempted."""
        done = 0
        while done < limit and not self.stopping.is_set():
            claim = delivery.claim(self.session, self.clock(), self.settings.webhook_lease)
            if claim is None:
                break
            answer = delivery.send(claim, self.clock(), self.settings, self.post)
            outcome = delivery.record(self.session, self.context, claim, answer, self.clock())
            level = logging.INFO if outcome == "delivered" else logging.WARNING
            log.log(
                level,
                "delivery %d (event %s, attempt %d) to %s: %s -> %s",
                claim.delivery_id,
                claim.event_id,
                claim.attempt,
                claim.url,
                answer.status_code or answer.error,
                outcome,
            )
            done += 1
        return done

    def run_periodic_checks(self) -> None:
        now = self.clock()
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + self.settings.sweep_interval
            self._guarded("sweep", self.sweep)
        if self._next_checkpoint is None or now >= self._next_checkpoint:
            self._next_checkpoint = now + self.settings.checkpoint_interval
            self._guarded("checkpoint", self.checkpoint)

    def _guarded(self, name: str, task: Callable[[], None]) -> None:
        # One failing check must not stop deliveries or the other check.
        try:
            task()
        except Exception:
            log.exception("%s failed; it runs again at its next interval", name)
            self.session.rollback()

    def sweep(self) -> None:
        """Run the time-based discrepancy checks (inventory.services.sweep), if present."""
        sweep = _optional("inventory.services.sweep")
        if sweep is None:
            log.info("no sweep in this build (inventory.services.sweep); skipped")
            return
        run_write(
            self.session,
            self.context,
            lambda uow: sweep.run_sweep(uow, self.clock()),
            lambda _result, _uow: None,
        )

    def checkpoint(self) -> None:
        """Sign an audit checkpoint if the log grew since the last one."""
        checkpoints = _optional("inventory.services.checkpoints")
        if checkpoints is None:
            log.info("no checkpoints in this build (inventory.services.checkpoints); skipped")
            return
        if (transparency := _optional("inventory.services.transparency")) is not None:
            run_write(
                self.session,
                self.context,
                lambda uow: transparency.flag_uncosigned(uow, self.clock()),
                lambda _flagged, _uow: None,
            )
        head_seq, _hash = audit_log.head(self.session)
        latest = checkpoints.latest(self.session)
        self.session.rollback()
        # A checkpoint appends its own audit record: a head one past it means nothing new.
        if head_seq == 0 or (latest is not None and head_seq <= latest.seq + 1):
            return
        run_write(self.session, self.context, checkpoint_and_publish, lambda _made, _uow: None)
