"""Scenario names and the Locust user classes each runs (kept apart from the locustfile, whose
import monkey-patches the interpreter with gevent)."""

ORDER = "POST /api/v1/sales/[id]/orders/"


def answer_label(status: int, body: dict | None) -> str:
    """How an order answer is counted: its status, and the error code when it has one
    (``409 sold_out``); every generator counts by it, so the audit and reports read one kind."""
    code = ((body or {}).get("error") or {}).get("code")
    return f"{status} {code}" if code else str(status)


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
