"""Scenario names and the Locust user classes each runs (kept apart from the locustfile, whose
import monkey-patches the interpreter with gevent)."""

ORDER = "POST /api/v1/sales/[id]/orders/"

SCENARIOS: dict[str, list[str]] = {
    "flash": ["FlashBuyer"],
    "retry": ["RetryStormBuyer"],
    "greedy": ["GreedyBuyer", "FlashBuyer"],
    "browse": ["BrowseBuyer"],
    "mixed": ["FlashBuyer", "RetryStormBuyer", "GreedyBuyer", "BrowseBuyer"],
    "hot": ["HotBuyer"],
    "ping": ["PingUser"],
    "floor": ["FloorUser"],
}
