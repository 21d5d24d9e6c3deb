"""``python -m loadtest.faults``: run the plan's scenarios, print the fault table."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadtest import faults
from loadtest.faults import PLANS, SCENARIOS
from loadtest.faults.result import Result, table
from loadtest.server import server_env


@contextlib.contextmanager
def standalone_django(work: Path, database_url: str | None) -> Iterator[str]:
    """Configure this process like the servers (loadtest.settings) and migrate; yields the
    database URL."""
    url = database_url or f"sqlite:///{work / 'faults.sqlite3'}"
    os.environ.update(
        server_env(
            database_url=url,
            redis_url="redis://127.0.0.1:1/0",
            var_dir=work / "var",
            base={**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY") or "faults"},
        )
    )
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    # This process only parses order ids (the sweep): no worker-id lease on each rig's Redis.
    settings.SECKILL_WORKER_ID = "0"
    call_command("migrate", verbosity=0)
    yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.faults", description=faults.__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--small", action="store_true", help="the CI size")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="default: $DATABASE_URL, else a fresh SQLite file under --work",
    )
    parser.add_argument("--work", type=Path, default=None, help="logs and SQLite (default: tmp)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="seckill-faults-"))
    plan = [
        (n, kw)
        for n, kw in PLANS["small" if args.small else "full"]
        if not args.only or n in args.only
    ]
    results: list[Result] = []
    with standalone_django(work, args.database_url) as url:
        for i, (name, kwargs) in enumerate(plan):
            print(f"[{i + 1}/{len(plan)}] {name} {kwargs or ''}", file=sys.stderr, flush=True)
            try:
                result = SCENARIOS[name](url, work / f"{i:02d}-{name}", **kwargs)
            except Exception as exc:  # one broken scenario must not hide the others
                result = Result(
                    name,
                    "?",
                    checks={"ran": False},
                    observed={"error": f"{type(exc).__name__}: {exc}"},
                )
            results.append(result)
            print(
                f"    {'PASS' if result.ok else 'FAIL'}: {result.summary()}",
                file=sys.stderr,
                flush=True,
            )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str))
    print(f"logs: {work}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
