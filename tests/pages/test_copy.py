"""Page copy: every error code the engine can raise has friendly text, every strategy a note."""

from __future__ import annotations

import pytest

from seckill import errors
from seckill.models import Strategy
from shop import pages


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


# Codes that never reach a page: API log-in failures (the page uses Django's login form).
API_ONLY = {"unauthenticated"}


@pytest.mark.parametrize(
    "error_class",
    sorted(
        (c for c in all_subclasses(errors.SeckillError) if c.code not in API_ONLY),
        key=lambda c: c.__name__,
    ),
    ids=lambda c: c.__name__,
)
def test_every_engine_error_has_page_copy(error_class):
    assert error_class.code in pages.ERROR_COPY, f"add copy for {error_class.code!r}"
    shown = pages.describe_error(error_class())
    assert shown.title and shown.hint and shown.status == error_class.status


def test_busy_hint_names_the_retry_delay():
    shown = pages.describe_error(errors.Busy(retry_after=2.4))
    assert shown.retry_after == 2 and "Try again in 2 s" in shown.hint


def test_unknown_code_falls_back():
    class Odd(errors.SeckillError):
        code = "odd"

    assert pages.describe_error(Odd()).title == pages.FALLBACK_COPY.title


@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
def test_every_strategy_has_a_one_sentence_note(strategy):
    note = pages.strategy_info(strategy).note
    assert note.endswith(".") and note.count(". ") == 0
