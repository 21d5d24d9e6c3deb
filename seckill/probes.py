"""Observation points inside the critical sections, for the lab (``seckill.lab``).

A race is only visible with timestamps taken *inside* the strategies: when a buyer entered its
critical section, what stock it read, when it wrote. The strategies call :func:`point` at those
moments and read the few settings the lab varies per run through :func:`setting`. Both are a
context-variable lookup and nothing else unless a probe is installed with :func:`probing`, which
only the lab does, for its own buyers' threads: the shop's requests are never observed and never
see the lab's settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from django.conf import settings


class Probe(Protocol):
    def point(self, name: str, **facts: Any) -> None:
        """``name`` happened now (``entered``, ``read``, ``wrote``, ``released``)."""

    def overrides(self) -> dict[str, Any]:
        """Settings this probe's buyer runs with instead of the project's."""


_current: ContextVar[Probe | None] = ContextVar("seckill_probe", default=None)


def point(name: str, **facts: Any) -> None:
    probe = _current.get()
    if probe is not None:
        probe.point(name, **facts)


def setting(name: str, default: Any = None) -> Any:
    """The setting ``name``, unless the installed probe runs its buyer with another value."""
    probe = _current.get()
    if probe is not None:
        overrides = probe.overrides()
        if name in overrides:
            return overrides[name]
    return getattr(settings, name, default)


def pause(name: str) -> None:
    """Fault injection: sleep the seconds the setting ``name`` says (0, the default: not at
    all), to widen a window a test or the lab needs to hit."""
    delay = setting(name)
    if delay:
        time.sleep(delay)


@contextmanager
def probing(probe: Probe) -> Iterator[None]:
    token = _current.set(probe)
    try:
        yield
    finally:
        _current.reset(token)
