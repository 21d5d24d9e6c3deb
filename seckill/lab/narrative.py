"""One paragraph, in plain words, of what happened in a run and why, computed from its records.

Every sentence is derived from the attempts' stamps (who read what while whom was inside, whose
lease ran out, who walked in, whose write was refused) and from the audit; nothing is canned per
strategy except the words that name a mechanism.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from seckill.lab.params import LEASED, RunParameters
from seckill.lab.recorder import Attempt
from seckill.models import Strategy

ENDINGS = {
    "done": "The run ended when every buyer had its answer.",
    "deadline": "The run ended at its {limit} s deadline.",
    "stopped": "You stopped the run.",
}


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _inside(a: Attempt) -> tuple[float, float] | None:
    start = a.entered if a.entered is not None else a.read
    if start is None:
        return None
    end = next((t for t in (a.released, a.wrote, a.end) if t is not None), start)
    return start, end


def _race(attempts: Sequence[Attempt], stale: int) -> list[str]:
    if not stale:
        return [
            "No buyer read the stock while another was between reading and writing, so no "
            "write overwrote another this time: try more buyers or a longer delay."
        ]
    writers = Counter(a.stock_read for a in attempts if a.wrote is not None)
    figure, readers = writers.most_common(1)[0]
    return [
        f"{_plural(stale, 'buyer')} read the stock while another was between reading and "
        "writing; each wrote its own figure back, so the writes overwrote one another "
        f"({_plural(readers, 'buyer')} read {figure} left and each wrote {figure - 1} back)."
    ]


def _naive(attempts: Sequence[Attempt], params: RunParameters) -> list[str]:
    lease = params.lease_ms
    held = sorted(
        (span, a) for a in attempts if (span := _inside(a)) is not None and a.entered is not None
    )
    lapses = [(span, a) for span, a in held if span[1] - span[0] > lease]
    if not lapses:
        return [
            f"Every holder finished within its {_ms(lease)} lease, so the tutorial lock held "
            "this time: make the delay longer than the lease to see it fail."
        ]
    (start, end), first = lapses[0]
    words = (
        f"Buyer {first.buyer}'s {_ms(lease)} lease ran out during its "
        f"{_ms(end - start)} in the critical section"
    )
    walked = next(
        ((span, a) for span, a in held if a is not first and start + lease <= span[0] < end),
        None,
    )
    if walked is not None:
        (w_start, w_end), second = walked
        words += f"; buyer {second.buyer} walked in"
        third = next(
            (a for span, a in held if a not in (first, second) and end <= span[0] < w_end),
            None,
        )
        if w_start < end < w_end:
            words += f"; {first.buyer}'s DEL then freed {second.buyer}'s lock"
            words += f" for buyer {third.buyer}" if third is not None else ""
    sentences = [words + "."]
    if len(lapses) > 1:
        sentences.append(f"Leases ran out {_plural(len(lapses), 'time')} in this run.")
    return sentences


def _stalled(attempts: Sequence[Attempt], params: RunParameters) -> list[str]:
    stalled = next((a for a in attempts if a.stalled and _inside(a) is not None), None)
    if stalled is None:
        return ["The stalled buyer never reached the critical section (it was sold out first)."]
    start, end = _inside(stalled)
    if end - start <= params.lease_ms and params.strategy != Strategy.DB_ROW_LOCK:
        return [
            f"Buyer {stalled.buyer} paused {_ms(end - start)}, within its {_ms(params.lease_ms)} "
            "lease: nobody walked in. Make the stall longer than the lease."
        ]
    if params.strategy not in LEASED:
        return [
            f"Buyer {stalled.buyer} froze for {_ms(params.stall_ms)} inside its critical "
            "section; the others waited for it."
        ]
    intruder = next(
        (
            a
            for a in attempts
            if a is not stalled and a.entered is not None and start < a.entered < end
        ),
        None,
    )
    words = (
        f"Buyer {stalled.buyer} froze for {_ms(params.stall_ms)} inside its critical section, "
        f"holding the lock; nothing renewed its {_ms(params.lease_ms)} lease (a frozen process "
        "renews nothing), so it ran out"
    )
    if intruder is None:
        return [words + ", but no other buyer came for the lock meanwhile."]
    words += f" and buyer {intruder.buyer} took the lock"
    words += f" (fence {intruder.fence})." if intruder.fence is not None else "."
    if stalled.refused:
        after = next(
            (a for a in attempts if a.buyer == stalled.buyer and a.attempt > stalled.attempt),
            None,
        )
        if after is not None and after.code:  # told 429, the buyer pressed again
            retry = f" It tried again and was told {after.code.replace('_', ' ')}."
        elif stalled.code and stalled.code != "stale_fence":  # group commit decided it again
            retry = f" The next holder decided its request again: {stalled.code.replace('_', ' ')}."
        else:
            retry = ""
        return [
            words,
            f"When buyer {stalled.buyer} woke, the database refused its write: its fence "
            f"{stalled.fence} is older than one that had written since.{retry}",
        ]
    if stalled.wrote is not None:
        return [
            words,
            f"When buyer {stalled.buyer} woke it wrote back the figure it had read before "
            f"({stalled.stock_read} left), as if buyer {intruder.buyer}'s sale had not happened: "
            "nothing told the database that its lease was gone.",
        ]
    return [words]


def _serialized(summary: dict, params: RunParameters) -> list[str]:
    waits = summary["lock_wait_ms"]
    what = {
        Strategy.DB_ROW_LOCK: "The database's row lock (SELECT … FOR UPDATE)",
        Strategy.NAIVE_LOCK: "The lock",
    }.get(params.strategy, "The item lock")
    words = (
        f"{what} let one buyer in at a time: {_plural(summary['sections'], 'critical section')},"
        f" at most {summary['most_at_once']} at once"
    )
    if summary["fence_refusals"]:
        words += " (a holder whose write was refused held nothing the database honoured)"

    if waits["count"]:
        words += f"; buyers waited for it (p50 {_ms(waits['p50'])}, p99 {_ms(waits['p99'])})"
    sentences = [words + "."]
    sentences += _group_commit(summary)
    busy = summary["codes"].get("busy", 0)
    if busy:
        sentences.append(
            f"{_plural(busy, 'attempt')} gave up waiting and were told 429 busy; those buyers "
            "tried again."
        )
    return sentences


def _group_commit(summary: dict) -> list[str]:
    grouped = summary.get("batches") or []
    if not grouped:
        return []
    biggest = max(grouped, key=lambda b: b["size"] or 0)
    who = ", ".join(str(buyer) for buyer in biggest["buyers"][:12])
    who += ", …" if len(biggest["buyers"]) > 12 else ""
    holder = f"buyer {biggest['decided_by']}" if biggest["decided_by"] else "one holder"
    return [
        "Each holder decided every buyer then waiting in one transaction (group commit): "
        f"{_plural(len(grouped), 'batch', 'batches')}, {summary['mean_batch_size']} requests per "
        f"batch on average; {holder} decided {biggest['size']} requests in one go (fence "
        f"{biggest['fence']}), writing the orders of buyers {who}."
    ]


def _late_renewal(params: RunParameters) -> str:
    fence = (
        "the fence refused the stale write"
        if params.strategy == Strategy.LOCK_FENCED
        else "lock_fenced would have refused the stale write"
    )
    return (
        f"Two holders overlapped although every buyer was alive: a {_ms(params.lease_ms)} lease "
        f"leaves the renewal thread {_ms(params.lease_ms / 3)} per renewal, and on a busy "
        f"machine one came late, so a lease lapsed; {fence}. Real leases are seconds long."
    )


def _atomic(summary: dict) -> list[str]:
    return [
        "Each buyer's check and deduction ran as one Lua script inside Redis, which runs one "
        "script at a time: there was no read-then-write in Python to overlap. "
        f"{_plural(summary['codes'].get('accepted', 0), 'order')} were accepted with 202 and "
        "written to the database afterwards, in batches."
    ]


def _audit(report: dict, ok: bool | None) -> str:
    if ok is None:
        return "The audit could not run."
    if ok:
        return "The audit found every invariant intact."
    found = "; ".join(v["message"] for v in report.get("violations", [])[:3])
    return f"The audit found violations: {found}."


def explain(
    params: RunParameters,
    attempts: Sequence[Attempt],
    summary: dict,
    *,
    audit: dict,
    audit_ok: bool | None,
    ended_by: str,
) -> str:
    stock, sold = summary["stock"], summary["sold"]
    opening = (
        f"{_plural(summary['buyers_started'], 'buyer')} of {params.buyers} tried to buy one unit "
        f"each of {stock} under {params.strategy}"
    )
    if params.strategy == Strategy.REDIS_ATOMIC:
        sentences = [opening + "."]
    else:
        sentences = [f"{opening}, with {_ms(params.delay_ms)} between reading and writing."]
    overlapped = summary["overlapping_sections"] > 0
    if params.strategy == Strategy.REDIS_ATOMIC:
        sentences += _atomic(summary)
    elif params.stall_ms:
        sentences += _stalled(attempts, params)
    elif params.strategy == Strategy.NAIVE_LOCK:
        sentences += _naive(attempts, params)
        if not overlapped:
            sentences += _serialized(summary, params)
    elif overlapped or params.strategy == Strategy.UNSAFE:
        sentences += _race(attempts, summary["stale_readers"])
        if params.strategy == Strategy.UNSAFE:
            sentences.append(
                f"Nothing serialized the buyers: up to {summary['most_at_once']} were inside "
                "at once."
            )
        elif params.strategy in LEASED:
            sentences.append(_late_renewal(params))
    else:
        sentences += _serialized(summary, params)
    if sold > stock:
        sentences.append(f"{sold} units were sold of {stock}: {sold - stock} that do not exist.")
    elif sold == stock:
        sentences.append(f"Exactly {_plural(stock, 'unit')} sold, no more.")
    else:
        sentences.append(f"{sold} of {stock} units were sold; {stock - sold} were left.")
    if summary["fence_refusals"]:
        sentences.append(f"Fence refusals: {summary['fence_refusals']}.")
    sentences.append(_audit(audit, audit_ok))
    sentences.append(ENDINGS[ended_by].format(limit=params.time_limit_s))
    return " ".join(sentences)
