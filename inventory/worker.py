"""`inventory worker`: the process that delivers alerts and runs the periodic checks.

Each pass fans new outbox events out to subscriptions, starts the deliveries that are due, runs
the sweep every Settings.sweep_interval, and signs an audit checkpoint every
Settings.checkpoint_interval (when the log has grown), publishing it to monitors as
`audit.checkpoint`.

Deliveries are POSTed by a pool of Settings.webhook_concurrency threads, at most one at a time per
subscription, each within Settings.webhook_timeout in all; this thread only claims and records
them (short transactions), so it never waits on an endpoint and the sweep and checkpoints keep
their schedule. An endpoint that keeps failing opens its subscription's circuit
(services/delivery.py) and holds at most one thread, and only its own deliveries.

SIGTERM or SIGINT lets the deliveries in flight finish (each within its deadline), then the worker
exits 0. A failing pass is logged and retried on the next one: the database may be restarting,
and the worker must outlive that.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from types import FrameType, ModuleType
from typing import Any

from sqlalchemy import text
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


def checkpoint_if_grown(uow: UnitOfWork) -> Any:
    """`checkpoint_and_publish`, unless the log has not grown since the last checkpoint, judged
    under the checkpoint lock: several workers may decide at once that one is due, and the ones
    that get the lock after the first would otherwise sign a head whose only news is the first's
    own `audit.checkpoint` record."""
    checkpoints = importlib.import_module("inventory.services.checkpoints")
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": checkpoints.CHECKPOINT_LOCK}
        )
    head_seq, _hash = audit_log.head(session)
    latest = checkpoints.latest(session)
    if head_seq == 0 or (latest is not None and head_seq <= latest.seq + 1):
        uow.changed_nothing()
        return None
    return checkpoint_and_publish(uow)


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
        self.pool = ThreadPoolExecutor(
            max_workers=settings.webhook_concurrency, thread_name_prefix="webhook"
        )
        self.in_flight: dict[Future[delivery.Answer], delivery.Claim] = {}
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
                    self.finish_in_flight()
                    break
                if not busy:
                    self.settle(wait_for=self.settings.worker_poll_interval.total_seconds())
            self.finish_in_flight()
        finally:
            self.pool.shutdown(wait=True)
            self.session.close()
            if self._engine is not None:
                self._engine.dispose()
        log.info("worker stopped")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the deliveries in flight, then stopping", signum)
        self.stopping.set()

    def run_pass(self) -> bool:
        """One pass; True if there may be more to do right away."""
        self.run_periodic_checks()
        dispatched = delivery.fan_out(self.session, self.clock())
        self.settle()
        started = self.dispatch(DELIVERIES_PER_PASS)
        return dispatched == delivery.FAN_OUT_BATCH or started == DELIVERIES_PER_PASS

    def dispatch(self, limit: int) -> int:
        """Claim due deliveries and hand them to the pool while it has room (up to `limit`), at
        most one in flight per subscription; return how many were started."""
        started = 0
        while started < limit and not self.stopping.is_set():
            room = min(limit - started, self.settings.webhook_concurrency - len(self.in_flight))
            if room <= 0:
                break
            busy = {claim.subscription_id for claim in self.in_flight.values()}
            claims = delivery.claim_many(
                self.session, self.clock(), self.settings.webhook_lease, busy, room
            )
            for claim in claims:
                self.in_flight[self.pool.submit(self._send, claim)] = claim
            started += len(claims)
            if len(claims) < room:
                break
        return started

    def _send(self, claim: delivery.Claim) -> delivery.Answer:
        try:
            return delivery.send(claim, self.clock(), self.settings, self.post)
        except Exception as error:  # a bug in sending must still be recorded, not lose the claim
            log.exception("delivery %d: sending failed", claim.delivery_id)
            return delivery.Answer(None, f"{type(error).__name__}: {error}", 0)

    def settle(self, wait_for: float = 0.0) -> int:
        """Record the deliveries that have finished (waiting up to `wait_for` seconds for one);
        return how many were recorded."""
        if not self.in_flight:
            if wait_for:
                self.stopping.wait(wait_for)
            return 0
        done, _pending = wait(self.in_flight, timeout=wait_for, return_when=FIRST_COMPLETED)
        finished = [(self.in_flight.pop(future), future.result()) for future in done]
        outcomes = delivery.record_many(self.session, self.context, finished, self.clock())
        for (claim, answer), outcome in zip(finished, outcomes, strict=True):
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
        return len(done)

    def finish_in_flight(self) -> None:
        """Wait for every delivery in flight (each ends by its deadline) and record it."""
        while self.in_flight:
            self.settle(wait_for=self.settings.webhook_timeout + 1)

    def deliver_due(self, limit: int) -> int:
        """Deliver up to `limit` due deliveries through the pool and wait until each is recorded;
        return how many were attempted."""
        done = 0
        while done < limit and not self.stopping.is_set():
            started = self.dispatch(limit - done)
            done += started
            if not started and not self.in_flight:
                break
            self.settle(wait_for=self.settings.webhook_timeout + 1)
        self.finish_in_flight()
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
        run_write(self.session, self.context, checkpoint_if_grown, lambda _made, _uow: None)
