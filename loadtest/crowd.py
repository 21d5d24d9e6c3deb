"""A flash crowd from one asyncio loop: the lean generator for the flash-crowd latency goal.

Every buyer arrives at its own moment (evenly over the arrival window), opens its own
connection, places one order with a fresh Idempotency-Key and is done; a 429 or 503 (or a
connection error) is retried on the same key after ``Retry-After`` × U(0.5, 1.5), up to six
tries: the behaviour of the locustfile's ``FlashBuyer``. What it leaves behind is what the
Locust processes leave (``accepted-*.jsonl`` in the same schema, ``answers-*.json``,
``nodes-*.json``), so the same audit checks it, plus ``crowd-stats.json`` (the order
endpoint's figures) and ``crowd-requests.csv`` (every request: when it was sent, its latency,
its answer).

Why not Locust: on two cores a Locust process spends about 0.85 ms of CPU per flash-crowd
request (a greenlet and an HTTP session per user), as much as the server's sold-out answer,
and spends it inside the same two-second burst, so the p99 it reports is the generator's
queue as much as the server's. Here a request costs a pre-built byte string and a minimal
response parse. Latency is counted from each buyer's *scheduled* arrival, not from when the
loop got round to it: a generator that falls behind counts against the server, never for it
(no coordinated omission).

    python -m loadtest.crowd --data locust-data.json --results DIR --host http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest.scenarios import answer_label

ATTEMPTS = 6  # the locustfile's FlashBuyer: one purchase intent, a 429 honoured five times
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Answer:
    status: int  # 0: no answer (connection refused, reset or timed out)
    body: dict | None = None
    retry_after: float | None = None


@dataclass
class Tally:
    """What the crowd saw: latency of every request, answers by label and by node."""

    latencies_ms: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)  # sent, ms, answer
    answers: Counter[str] = field(default_factory=Counter)
    nodes: Counter[str] = field(default_factory=Counter)
    last_answer: float = 0.0


def request_bytes(*, host: str, path: str, token: str, key: str) -> bytes:
    body = b'{"quantity": 1}'
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {token}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> Answer:
    """One HTTP/1.1 response: status line, headers, a Content-Length or chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        raw = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        raw = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            raw += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        raw = await reader.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    retry_after = headers.get("retry-after")
    return Answer(status, body if isinstance(body, dict) else None, _number(retry_after))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


class Crowd:
    """``users`` one-shot buyers arriving evenly over ``window`` seconds."""

    def __init__(
        self, *, urls: list[str], sale_id: int, tokens: list[str], users: int, results: Path
    ) -> None:
        self.urls = urls
        self.path = f"/api/v1/sales/{sale_id}/orders/"
        self.tokens = tokens
        self.users = users
        self.results = results
        self.tally = Tally()
        results.mkdir(parents=True, exist_ok=True)
        self.accepted = open(results / f"accepted-crowd-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115

    async def run(self, *, window: float, deadline: float) -> None:
        start = time.monotonic()
        self.start, self.cpu_before = start, time.process_time()
        buyers = [
            asyncio.create_task(self.buyer(index, start + window * index / self.users))
            for index in range(self.users)
        ]
        _done, pending = await asyncio.wait(buyers, timeout=deadline)
        for task in pending:  # cut by the window: those buyers got no answer
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.crowd_cpu_s = time.process_time() - self.cpu_before
        self.accepted.close()

    async def buyer(self, index: int, arrival: float) -> None:
        await asyncio.sleep(max(0.0, arrival - time.monotonic()))
        url = self.urls[index % len(self.urls)]
        token = self.tokens[index % len(self.tokens)]
        key = f"flash-{uuid.uuid4().hex}"
        split = urlsplit(url)
        message = request_bytes(host=split.netloc, path=self.path, token=token, key=key)
        streams = None
        sent = arrival  # the first request's clock starts at the scheduled arrival
        try:
            for _attempt in range(ATTEMPTS):
                answer, streams = await self.place(split, message, streams)
                self.count(answer, url, sent)
                if answer.status in (200, 201, 202) and answer.body and "order_id" in answer.body:
                    line = {
                        "order_id": str(answer.body["order_id"]),
                        "status": answer.status,
                        "token": token[:12],
                        "key": key,
                        "node": url,
                    }
                    self.accepted.write(json.dumps(line) + "\n")
                if answer.status not in (0, 429, 503):
                    return
                await asyncio.sleep((answer.retry_after or 1.0) * random.uniform(0.5, 1.5))
                sent = time.monotonic()
        finally:
            if streams is not None:
                streams[1].close()

    async def place(self, split, message: bytes, streams):
        """One request on the buyer's connection (opened, or reopened after an error)."""
        try:
            if streams is None:
                streams = await asyncio.open_connection(split.hostname, split.port)
            reader, writer = streams
            writer.write(message)
            answer = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            if streams is not None:
                streams[1].close()
            return Answer(0), None
        return answer, streams

    def count(self, answer: Answer, url: str, sent: float) -> None:
        now = time.monotonic()
        label = answer_label(answer.status, answer.body)
        self.tally.latencies_ms.append((now - sent) * 1000)
        self.tally.timeline.append((sent - self.start, (now - sent) * 1000, label))
        self.tally.answers[label] += 1
        self.tally.nodes[url] += 1
        self.tally.last_answer = now

    def stats(self) -> dict[str, Any]:
        """Locust's per-endpoint figures for the order endpoint, from every request's latency."""
        latencies = sorted(self.tally.latencies_ms)
        span = max(self.tally.last_answer - self.start, 1e-9)
        failures = sum(n for label, n in self.tally.answers.items() if not answered(label))
        return {
            "count": len(latencies),
            "failures": failures,
            "rps": len(latencies) / span,
            **{f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
            "max": latencies[-1] if latencies else 0.0,
            # the generator's CPU while the crowd ran (start-up and imports not counted)
            "crowd_cpu_s": self.crowd_cpu_s,
        }

    def write(self) -> None:
        pid = os.getpid()
        (self.results / f"answers-{pid}.json").write_text(json.dumps(dict(self.tally.answers)))
        (self.results / f"nodes-{pid}.json").write_text(json.dumps(dict(self.tally.nodes)))
        (self.results / "crowd-stats.json").write_text(json.dumps(self.stats()))
        with open(self.results / "crowd-requests.csv", "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["sent_s", "latency_ms", "answer"])  # sent: from the first arrival
            rows.writerows(sorted(self.tally.timeline))


def answered(label: str) -> bool:
    """An answer, as the locustfile counts it: 2xx, 409 or 429 (a 503 or no answer fails)."""
    return label[:1] == "2" or label.startswith(("409", "429"))


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="sale_id and tokens (JSON)")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--host", action="append", required=True, help="web node base URL")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--window", type=float, default=2.0, help="arrival window, seconds")
    parser.add_argument("--deadline", type=float, default=30.0, help="stop after, seconds")
    args = parser.parse_args(argv)
    for url in args.host:
        if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
            parser.error(f"load only ever targets loopback, not {url}")
    data = json.loads(args.data.read_text())
    crowd = Crowd(
        urls=args.host,
        sale_id=data["sale_id"],
        tokens=data["tokens"],
        users=args.users,
        results=args.results,
    )
    asyncio.run(crowd.run(window=args.window, deadline=args.deadline))
    crowd.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
