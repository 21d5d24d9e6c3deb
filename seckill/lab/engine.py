"""Run a lab crowd: real buyers, through the real placement service, on a sale of its own.

Why threads in the process that started the run (and not a Celery task or HTTP): the timeline
compares stamps taken inside different buyers' critical sections, which needs one clock; the
buyers still share nothing but what the shop's requests share (Redis, the database, the lock).
The page polls the run's live figures from Redis, so any web worker can answer it. One run at a
time across processes (a lock with a watchdog: if the process dies, the lease lapses and the
next run closes the orphan), bounded by ``params.BOUNDS``, a deadline and the Stop button.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from seckill import order_queue, probes, sale_cache, stock
from seckill.audit import audit_sale
from seckill.errors import SeckillError, StaleFence
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.lab import analysis, narrative
from seckill.lab.errors import LabBusy
from seckill.lab.models import LabRun, RunStatus
from seckill.lab.params import RunParameters
from seckill.lab.recorder import Attempt, AttemptProbe, Recorder
from seckill.lab.visibility import LAB_PRODUCT
from seckill.lock import Lock, LockNotOwnedError
from seckill.models import Order, Sale, Strategy
from seckill.placement import place_order
from shop.models import Product

log = logging.getLogger(__name__)

THREADS = 12  # buyers inside the placement service at once (each holds a DB connection)
RETRY_PAUSE = 0.1  # a buyer told 429 presses again this much later (impatient, as buyers are)
FLUSH_EVERY = 0.25  # seconds between live snapshots for the page
STALL_HEAD_START = 1.0  # the stalled buyer enters alone, at most this long before the crowd
RUN_LOCK = "seckill:lab:run"
LIVE_TTL = 3600
BUYER_PREFIX = "lab-buyer-"
FINAL_STATUSES = {200, 201, 202, 409, 500, 503}  # 429 is pressed again


def live_key(run_id: int) -> str:
    return f"seckill:lab:run:{run_id}:live"


def stop_key(run_id: int) -> str:
    return f"seckill:lab:run:{run_id}:stop"


def run_lock() -> Lock:
    return Lock(get_redis(), RUN_LOCK, ttl=10.0, watchdog=True)


# --- setting up ---------------------------------------------------------------------------------


def lab_buyers(count: int) -> list:
    """``count`` real users who exist only to be the lab's crowd (no usable password)."""
    users = get_user_model()
    names = [f"{BUYER_PREFIX}{n:03d}" for n in range(1, count + 1)]
    users.objects.bulk_create(
        [users(username=name, password=make_password(None)) for name in names],
        ignore_conflicts=True,
    )
    found = {u.username: u for u in users.objects.filter(username__in=names)}
    return [found[name] for name in names]


def lab_sale(params: RunParameters) -> Sale:
    product, _ = Product.objects.get_or_create(
        name=LAB_PRODUCT, defaults={"price": Decimal("1.00"), "swatch": "#6b7280"}
    )
    now = timezone.now()
    return Sale.objects.create(
        product=product,
        price=Decimal("1.00"),
        starts_at=now - timedelta(seconds=1),
        ends_at=now + timedelta(seconds=params.time_limit_s + 120),
        stock_total=params.stock,
        stock_left=params.stock,
        per_user_limit=1,
        strategy=params.strategy,
    )


def delete_lab_sale(sale_id: int | None) -> None:
    """The lab sale, its orders and its Redis state go; its figures are in the LabRun."""
    if sale_id is None:
        return
    with transaction.atomic():
        Order.objects.filter(sale_id=sale_id).delete()
        Sale.objects.filter(pk=sale_id).delete()
    keys = sale_keys(sale_id)
    client = get_redis()
    # The fence stays (fences never go backwards, even for a deleted sale) and expires by
    # itself: the lock and the mirror load give it a day's life whenever they write it.
    client.delete(*[k for k in keys.all() if k != keys.fence])
    sale_cache.forget_all()


def close_orphans() -> None:
    """Runs left 'running' by a process that died (called while holding the run lock)."""
    for run in LabRun.objects.filter(status=RunStatus.RUNNING):
        delete_lab_sale(run.sale_id)
        run.status, run.finished_at, run.sale_id = RunStatus.ABANDONED, timezone.now(), None
        run.save(update_fields=["status", "finished_at", "sale_id"])


def start_run(params: RunParameters, *, started_by=None, background: bool = True) -> LabRun:
    """Claim the lab, make the run's sale and buyers, and run the crowd (in a thread unless
    ``background=False``). LabBusy while another run holds the lab."""
    lock = run_lock()
    if not lock.acquire(blocking=False):
        raise LabBusy()
    try:
        close_orphans()
        sale = lab_sale(params)
        stock.load_mirror(sale)
        run = LabRun.objects.create(
            strategy=params.strategy,
            params=params.as_dict(),
            sale_id=sale.pk,
            started_by=started_by,
        )
        get_redis().set(live_key(run.pk), json.dumps(empty_live(params)), ex=LIVE_TTL)
    except BaseException:
        lock.release()
        raise
    if not background:
        execute(run.pk, lock)
        run.refresh_from_db()
        return run
    threading.Thread(
        target=_execute_in_background, args=(run.pk, lock), name=f"lab-run-{run.pk}", daemon=True
    ).start()
    return run


def _execute_in_background(run_id: int, lock: Lock) -> None:
    try:
        execute(run_id, lock)
    finally:
        connection.close()


def request_stop(run_id: int) -> None:
    get_redis().set(stop_key(run_id), 1, ex=LIVE_TTL)


def live(run_id: int) -> dict | None:
    raw = get_redis().get(live_key(run_id))
    return None if raw is None else json.loads(raw)


def empty_live(params: RunParameters) -> dict:
    return analysis.summarize([], stock=params.stock, buyers=params.buyers, elapsed_ms=0)


# --- the crowd ----------------------------------------------------------------------------------


class Crowd:
    """The buyers of one run and the two things that end it early: Stop, and the deadline.

    Each attempt is one task on a pool of THREADS threads; a buyer told 429 queues its next
    attempt behind everyone waiting, so a crowd of 500 all get their first press in before the
    first ones press again (as a real crowd's would)."""

    def __init__(self, run: LabRun, params: RunParameters) -> None:
        self.run, self.params = run, params
        self.recorder = Recorder()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + params.time_limit_s
        self.pending = 0
        self.idle = threading.Condition()
        self.pool: ThreadPoolExecutor | None = None

    def over(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def submit(self, number: int, user, attempt: int, not_before: float = 0.0) -> Future:
        with self.idle:
            self.pending += 1
        return self.pool.submit(self.press, number, user, attempt, not_before)

    def press(self, number: int, user, attempt: int, not_before: float) -> None:
        """One press of Buy; a 429 queues the next press RETRY_PAUSE later."""
        try:
            pause = not_before - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if self.over():
                return
            stalled = number == 1 and attempt == 1 and self.params.stall_ms > 0
            record = self.recorder.begin(number, attempt, stalled=stalled)
            overrides = self.params.overrides(stalled=stalled)
            with probes.probing(AttemptProbe(self.recorder, record, overrides)):
                self.place(record, user, f"lab-{self.run.pk}-{number}")
            if record.status not in FINAL_STATUSES:
                self.submit(number, user, attempt + 1, time.monotonic() + RETRY_PAUSE)
        finally:
            connection.close()  # back to the pool between presses: threads change buyers
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    def place(self, record: Attempt, user, key: str) -> None:
        try:
            placement = place_order(self.run.sale_id, user, 1, key)
        except StaleFence:
            record.status, record.code, record.refused = 429, "stale_fence", True
        except SeckillError as exc:
            record.status, record.code = exc.status, exc.code
        except Exception:  # the lab shows it rather than dying with it
            log.exception("lab run %s: buyer %s", self.run.pk, record.buyer)
            record.status, record.code = 500, "error"
        else:
            if not placement.created:
                record.status, record.code = 200, "replayed"
            else:
                record.status = 202 if placement.queued else 201
                record.code = "accepted" if placement.queued else "created"
            record.order_fence = placement.fence
            record.order_id = str(placement.order.id)
            batch_id = getattr(placement.order, "batch_id", None)
            if batch_id is not None:
                record.batch_id = str(batch_id)
                record.batch_position = placement.order.batch_position
                record.batch_size = placement.order.batch_size
        finally:
            record.end = self.recorder.now()

    def summary(self) -> dict:
        return analysis.summarize(
            self.recorder.attempts(),
            stock=self.params.stock,
            buyers=self.params.buyers,
            elapsed_ms=self.recorder.now(),
        )

    def publish(self) -> None:
        get_redis().set(live_key(self.run.pk), json.dumps(self.summary()), ex=LIVE_TTL)

    def go(self, users: list) -> str:
        """Run every buyer; how the run ended (``done``, ``deadline`` or ``stopped``)."""
        client = get_redis()
        with ThreadPoolExecutor(min(THREADS, len(users)), thread_name_prefix="lab-buyer") as pool:
            self.pool = pool
            first = self.submit(1, users[0], 1)
            if self.params.stall_ms:  # buyer 1 first, so it is the holder that stalls
                self.wait_for_entry(first)
            for number, user in enumerate(users[1:], start=2):
                self.submit(number, user, 1)
            while not self.settled(FLUSH_EVERY):
                if client.exists(stop_key(self.run.pk)):
                    self.stop.set()
                self.publish()
        if self.stop.is_set():
            return "stopped"
        return "deadline" if time.monotonic() >= self.deadline else "done"

    def settled(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.pending == 0, timeout=timeout)

    def wait_for_entry(self, first: Future) -> None:
        until = time.monotonic() + STALL_HEAD_START
        while time.monotonic() < until and not first.done():
            attempts = self.recorder.attempts()
            if attempts and (attempts[0].entered or attempts[0].read) is not None:
                return
            time.sleep(0.005)


def execute(run_id: int, lock: Lock) -> None:
    """Run the crowd, audit the sale, keep the figures, delete the sale, free the lab."""
    run = LabRun.objects.get(pk=run_id)
    params = RunParameters.from_dict(run.params)
    crowd = Crowd(run, params)
    try:
        ended_by = crowd.go(lab_buyers(params.buyers))
        if params.strategy == Strategy.REDIS_ATOMIC:
            # What Celery would do next, done now so the audit sees it.
            order_queue.drain(run.sale_id)
        # This sale only: the shop's own sales are the dashboard's business, not the run's.
        sale_report = audit_sale(Sale.objects.get(pk=run.sale_id), get_redis())
        audit_ok = not sale_report["violations"]
        summary = crowd.summary()
        summary["ended_by"] = ended_by
        summary["narrative"] = narrative.explain(
            params,
            crowd.recorder.attempts(),
            summary,
            audit=sale_report,
            audit_ok=audit_ok,
            ended_by=ended_by,
        )
        run.summary, run.audit, run.audit_ok = summary, sale_report, audit_ok
        run.status = RunStatus.STOPPED if ended_by == "stopped" else RunStatus.FINISHED
    except Exception as exc:
        log.exception("lab run %s failed", run_id)
        run.status, run.summary = RunStatus.FAILED, {**crowd.summary(), "error": str(exc)}
    finally:
        try:
            delete_lab_sale(run.sale_id)
        except Exception:
            log.exception("lab run %s: could not delete its sale %s", run_id, run.sale_id)
        run.sale_id, run.finished_at = None, timezone.now()
        run.save()
        get_redis().delete(live_key(run_id), stop_key(run_id))
        try:
            lock.release()
        except LockNotOwnedError:
            log.warning("lab run %s: the lab's lock lapsed before the run ended", run_id)


# --- reading runs ---------------------------------------------------------------------------------


def close_orphans_if_idle() -> None:
    """Close runs whose process died, if no run holds the lab right now."""
    if not LabRun.objects.filter(status=RunStatus.RUNNING).exists():
        return
    lock = run_lock()
    if lock.acquire(blocking=False):
        try:
            close_orphans()
        finally:
            lock.release()


def figures(run: LabRun) -> dict:
    """The run's figures: live from Redis while it runs, as kept once it has ended."""
    if run.status == RunStatus.RUNNING:
        return live(run.pk) or empty_live(RunParameters.from_dict(run.params))
    return run.summary
