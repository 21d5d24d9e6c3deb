"""One buyer that becomes a group-commit combiner and stops where a fault test says.

``python -m tests.faults.combiner SALE_ID USER_ID GO_FILE STOP_AT`` holds the item lock at probe
point ``entered`` until GO_FILE exists (the test has queued its waiters by then), prints
``at STOP_AT`` on reaching that point and sleeps there (the test kills or freezes it), then
prints its own outcome as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


class StopAt:
    def __init__(self, go: Path, stop_at: str) -> None:
        self.go, self.stop_at = go, stop_at

    def point(self, name: str, **facts: Any) -> None:
        if name == "entered":
            deadline = time.monotonic() + 300  # the test starts its waiters meanwhile
            while not self.go.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if name == self.stop_at:
            print(f"at {name}", flush=True)
            time.sleep(float(os.environ.get("COMBINER_STOP_FOR", "30")))

    def overrides(self) -> dict[str, Any]:
        return {}


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from seckill import probes
    from seckill.errors import SeckillError
    from seckill.placement import place_order

    sale_id, user_id, go, stop_at = int(argv[0]), int(argv[1]), Path(argv[2]), argv[3]
    user = get_user_model().objects.get(pk=user_id)
    with probes.probing(StopAt(go, stop_at)):
        try:
            placement = place_order(sale_id, user, 1)
            outcome = {"code": "ok", "order_id": placement.order.id}
        except SeckillError as refusal:
            outcome = {"code": refusal.code, "order_id": None}
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
