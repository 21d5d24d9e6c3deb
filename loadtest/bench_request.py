"""What one request costs in-process, through Django's whole handler (middleware included), side
by side in one run: the ping view, a floor-like DRF view (parse ``{"quantity": n}``, one
``EVALSHA``), a sold-out answer and an accepted ``redis_atomic`` order.

    python -m loadtest.bench_request [--redis-url redis://127.0.0.1:6379/14] [--requests 300]
        [--rounds 7] [--profile sold_out [--sort tottime]]

Database: ``DATABASE_URL`` as the app reads it (PostgreSQL for the figures the issue quotes);
a throwaway test database is created and dropped, as the test runner does. Redis: a database
of ``--redis-url`` that the run empties before and after (never a shared one you care about).
Each round runs ``--requests`` of every case in turn (interleaved, so a noisy neighbour hurts
them alike); the figures are each case's median round, in ms per request (wall clock, and
this process' CPU), and their ratio to ping.
The throttles keep their real cost: their rates are raised only so that one buyer is never
refused. ``--profile CASE`` prints where that case spends its time (cProfile). Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable

CASES = ("ping", "floor", "sold_out", "redis_atomic")


def configure(redis_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest.settings")
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("SECRET_KEY", "bench-request-not-a-secret")
    os.environ.update(DEBUG="0", HTTPS="0", LOG_LEVEL="WARNING")  # as loadtest.server runs it
    os.environ.setdefault("CELERY_BROKER_URL", redis_url)  # a drain request every 5 s lands here
    os.environ["SECKILL_THROTTLE_ORDER"] = "100000000/min"
    os.environ["SECKILL_THROTTLE_ORDER_IP"] = "100000000/min"
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["*"]


# The floor: the least an order path that must consult Redis once can cost (see the issue).
FLOOR_SCRIPT = "return redis.call('DECRBY', KEYS[1], ARGV[1])"
urlpatterns: list = []


def floor_urls() -> list:
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from loadtest.urls import urlpatterns as app_urls
    from seckill.infrastructure.lua import registered_script

    class Floor(APIView):
        authentication_classes: list = []
        permission_classes: list = []

        def post(self, request):
            left = registered_script(FLOOR_SCRIPT)(
                keys=["bench:floor"], args=[request.data["quantity"]]
            )
            return Response({"left": left})

    return [*app_urls, path("bench/floor", Floor.as_view())]


def setup_sales() -> dict[str, Callable[[], object]]:
    """The cases, each a callable making one request (asserting its status)."""
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from seckill import token_cache
    from seckill.models import Sale
    from shop.models import Product

    now = timezone.now()
    product = Product.objects.create(name="bench", price=Decimal("10"))

    def sale(stock: int, strategy: str) -> Sale:
        return Sale.objects.create(
            product=product,
            price=Decimal("9.99"),
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            stock_total=max(stock, 1),
            stock_left=stock,
            per_user_limit=10_000_000,
            strategy=strategy,
        )

    sold_out, atomic = sale(0, "lock"), sale(10_000_000, "redis_atomic")
    user = get_user_model().objects.create_user("bench-buyer", password="bench-pw-long-1")
    token = Token.objects.create(user=user).key
    token_cache.remember([(token, user)])  # as signing in does
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
    body = b'{"quantity": 1}'

    keys = itertools.count()

    def post(url: str, expected: int) -> Callable[[], object]:
        def call() -> object:  # a fresh Idempotency-Key each, as real clients send
            key = f"bench-{next(keys)}"
            response = client.post(
                url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
            )
            assert response.status_code == expected, (url, response.status_code, response.content)
            return response

        return call

    def ping() -> object:
        response = client.get("/loadtest/ping")
        assert response.status_code == 200
        return response

    from seckill.infrastructure.redis_client import get_redis

    get_redis().set("bench:floor", 10**12)
    return {
        "ping": ping,
        "floor": post("/bench/floor", 200),
        "sold_out": post(f"/api/v1/sales/{sold_out.pk}/orders/", 409),
        "redis_atomic": post(f"/api/v1/sales/{atomic.pk}/orders/", 202),
    }


def measure(cases: dict[str, Callable[[], object]], requests: int, rounds: int) -> dict:
    for call in cases.values():  # warm: scripts loaded, caches filled, mirrors built
        for _ in range(20):
            call()
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                call()
            wall[name].append((time.perf_counter() - started) * 1000 / requests)
            cpu[name].append((time.process_time() - started_cpu) * 1000 / requests)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in cases}


def profile(call: Callable[[], object], requests: int, sort: str = "cumulative") -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call()
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats(sort).print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=CASES)
    parser.add_argument(
        "--sort", choices=("cumulative", "tottime"), default="cumulative", help="profile order"
    )
    args = parser.parse_args()
    configure(args.redis_url)
    global urlpatterns
    urlpatterns = floor_urls()

    import redis
    from django.db import connection
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    scratch = redis.Redis.from_url(args.redis_url)
    scratch.flushdb()
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        cases = setup_sales()
        figures = measure(cases, args.requests, args.rounds)
        print(f"in-process per request, {connection.vendor}, median of {args.rounds} rounds")
        print("  (wall: what a client waits; cpu: this process' own time, which a busy machine")
        print("  skews less, since waiting for Redis or the scheduler is not counted)")
        ping_wall, ping_cpu = figures["ping"]
        for name, (ms, cpu_ms) in figures.items():
            print(
                f"  {name:<13} wall {ms:6.3f} ms {ms / ping_wall:5.2f} x ping"
                f"   cpu {cpu_ms:6.3f} ms {cpu_ms / ping_cpu:5.2f} x ping"
            )
        if args.profile:
            profile(cases[args.profile], args.requests, args.sort)
    finally:
        teardown_databases(databases, verbosity=0)
        scratch.flushdb()


if __name__ == "__main__":
    main()
