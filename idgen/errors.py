"""Exceptions raised by idgen. Each means "no id was produced", never "an id may repeat"."""


class ClockRollbackError(RuntimeError):
    """The wall clock went back further than the generator is willing to wait out.

    Issuing ids at the earlier time could repeat ids already handed out, so the generator refuses
    until the clock catches up with the last millisecond it used (or the process is restarted on a
    fixed clock with a fresh worker id).
    """

    def __init__(self, behind_ms: int, tolerance_ms: int) -> None:
        super().__init__(
            f"clock moved backwards by {behind_ms} ms (tolerance {tolerance_ms} ms); "
            "refusing to issue ids that could repeat"
        )
        self.behind_ms = behind_ms
        self.tolerance_ms = tolerance_ms


class WorkerLeaseError(RuntimeError):
    """The worker id lease could not be obtained or kept, so this process may no longer use it."""
