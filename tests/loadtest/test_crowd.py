"""The flash crowd's lean generator against a tiny HTTP server of the test's own (the whole
generator, end to end: its connections, its retries, what it leaves for the audit). The
ceiling test runs it against the real gunicorn and audits the sale it sold out."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import pytest

from loadtest import crowd


class OrderServer:
    """Answers every order POST on its own thread's event loop: the first ``busy`` requests
    with 429 ``busy`` (Retry-After: 0), the rest 201 with a new order id, each after
    ``delay`` seconds, one request at a time (a server with one worker)."""

    def __init__(self, *, busy: int = 0, delay: float = 0.0, chunked: bool = False) -> None:
        self.busy, self.delay, self.chunked = busy, delay, chunked
        self.keys: list[str] = []
        self.connections = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self.serve(),), daemon=True)

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.turn = asyncio.Lock()
        self.stop = asyncio.Event()
        server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await self.stop.wait()

    async def connection(self, reader, writer) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                await reader.readexactly(int(headers["Content-Length"]))
                async with self.turn:
                    await asyncio.sleep(self.delay)
                    self.keys.append(headers["Idempotency-Key"])
                    writer.write(self.answer(len(self.keys)))
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    def answer(self, n: int) -> bytes:
        if n <= self.busy:
            status, extra = "429 Too Many Requests", "Retry-After: 0\r\n"
            body = json.dumps({"error": {"code": "busy", "message": "busy"}}).encode()
        else:
            status, extra = "201 Created", ""
            body = json.dumps({"order_id": str(1000 + n), "quantity": 1}).encode()
        if self.chunked:
            size = f"{len(body):x}".encode()
            payload = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
            return f"HTTP/1.1 {status}\r\n{extra}Transfer-Encoding: chunked\r\n\r\n".encode() + (
                payload
            )
        head = f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def __enter__(self) -> OrderServer:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


def run_crowd(tmp_path, server: OrderServer, *, users: int, window: float = 0.2):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"sale_id": 7, "tokens": [f"token-{n:02}" for n in range(5)]}))
    results = tmp_path / "results"
    argv = ["--data", str(data), "--results", str(results), "--users", str(users)]
    argv += ["--host", f"http://127.0.0.1:{server.port}", "--window", str(window)]
    assert crowd.main([*argv, "--deadline", "20"]) == 0
    return results


def leftovers(results):
    (answers,) = results.glob("answers-*.json")
    (accepted,) = results.glob("accepted-crowd-*.jsonl")
    lines = [json.loads(line) for line in accepted.read_text().splitlines()]
    return (
        json.loads(answers.read_text()),
        lines,
        json.loads((results / "crowd-stats.json").read_text()),
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_buyer_orders_once_on_its_own_connection(tmp_path, chunked):
    with OrderServer(chunked=chunked) as server:
        results = run_crowd(tmp_path, server, users=30)
    answers, accepted, stats = leftovers(results)
    assert answers == {"201": 30}
    assert server.connections == 30 and len(set(server.keys)) == 30
    assert sorted(r["key"] for r in accepted) == sorted(server.keys)
    assert {r["order_id"] for r in accepted} == {str(1000 + n) for n in range(1, 31)}
    assert {r["node"] for r in accepted} == {f"http://127.0.0.1:{server.port}"}
    assert all(r["status"] == 201 and r["token"].startswith("token-") for r in accepted)
    assert stats["count"] == 30 and stats["failures"] == 0
    assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    timeline = (results / "crowd-requests.csv").read_text().splitlines()
    assert timeline[0] == "sent_s,latency_ms,answer" and len(timeline) == 31
    sent = [float(line.split(",")[0]) for line in timeline[1:]]
    assert sent == sorted(sent) and sent[0] >= 0 and sent[-1] < 1.0  # arrivals over the window


def test_a_busy_answer_is_retried_with_the_same_key(tmp_path):
    with OrderServer(busy=4) as server:
        results = run_crowd(tmp_path, server, users=10)
    answers, accepted, stats = leftovers(results)
    assert answers == {"429 busy": 4, "201": 10}
    assert len(server.keys) == 14 and len(set(server.keys)) == 10  # four keys sent twice
    assert Counter(Counter(server.keys).values()) == {1: 6, 2: 4}
    assert len(accepted) == 10 and stats["count"] == 14 and stats["failures"] == 0


def test_latency_counts_the_wait_behind_earlier_buyers(tmp_path):
    # ten buyers at once, answered one at a time 50 ms apart: the last waited about 0.5 s
    with OrderServer(delay=0.05) as server:
        results = run_crowd(tmp_path, server, users=10, window=0.0)
    _answers, _accepted, stats = leftovers(results)
    assert stats["max"] >= 450 and stats["p50"] >= 200


def test_a_refused_connection_is_no_answer_and_no_order(tmp_path):
    with OrderServer() as server:
        port = server.port
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"sale_id": 7, "tokens": ["token"]}))
    results = tmp_path / "results"
    argv = ["--data", str(data), "--results", str(results), "--users", "2", "--window", "0"]
    # six tries each, Retry-After absent: about 1 s apart; the deadline cuts them first
    assert crowd.main([*argv, "--host", f"http://127.0.0.1:{port}", "--deadline", "1.5"]) == 0
    answers, accepted, _stats = leftovers(results)
    assert set(answers) == {"0"} and accepted == []


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert crowd.percentile(values, 50) == 50 and crowd.percentile(values, 99) == 99
    assert crowd.percentile([3.0], 99) == 3 and crowd.percentile([], 50) == 0


def test_only_loopback_is_a_target(tmp_path):
    with pytest.raises(SystemExit):
        crowd.main(
            ["--data", "x", "--results", str(tmp_path), "--users", "1"]
            + ["--host", "http://10.0.0.1:80"]
        )
