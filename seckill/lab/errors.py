"""The lab's refusals, in the engine's error shape (code, status, message)."""

from __future__ import annotations

from seckill.errors import SeckillError


class LabBusy(SeckillError):
    """One run at a time: the crowd shares the machine with the shop."""

    code, status, default_message = "lab_busy", 409, "another lab run is in progress"
