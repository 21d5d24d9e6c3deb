"""Command line: mint and inspect ids without writing code.

    python -m idgen snowflake --count 5 [--worker-id N | --redis-url URL]
    python -m idgen parse ID [--kind snowflake|date]
    python -m idgen date --count 5 --redis-url URL [--segment 100]
    python -m idgen encode ID --key SECRET        (or env IDGEN_PUBLIC_KEY)
    python -m idgen decode PUBLIC_ID --key SECRET

Without ``--worker-id`` the snowflake command leases a worker id when ``--redis-url`` (or env
``IDGEN_REDIS_URL``) is given, and uses worker 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from . import DEFAULT_EPOCH_MS, Snowflake, SnowflakeLayout
from .date_incr import DateIncrGenerator
from .public import PublicIdCodec

if TYPE_CHECKING:
    import redis


def _redis(url: str) -> redis.Redis:
    """Imported here: parse, encode and decode work without the redis package."""
    import redis

    return redis.Redis.from_url(url)


def _layout(args: argparse.Namespace) -> SnowflakeLayout:
    return SnowflakeLayout(
        epoch_ms=args.epoch_ms, worker_bits=args.worker_bits, sequence_bits=args.sequence_bits
    )


def _cmd_snowflake(args: argparse.Namespace) -> int:
    url = args.redis_url or os.environ.get("IDGEN_REDIS_URL")
    if args.worker_id is None and url:
        gen = Snowflake(redis=_redis(url), layout=_layout(args), key_prefix=args.prefix)
    else:
        gen = Snowflake(worker_id=args.worker_id or 0, layout=_layout(args))
    with gen:
        for i in gen.next_ids(args.count):
            print(i)
    return 0


def _cmd_date(args: argparse.Namespace) -> int:
    url = args.redis_url or os.environ.get("IDGEN_REDIS_URL")
    if not url:
        print("date ids need --redis-url or IDGEN_REDIS_URL", file=sys.stderr)
        return 2
    gen = DateIncrGenerator(_redis(url), segment_size=args.segment, prefix=args.prefix)
    for i in gen.next_ids(args.count):
        print(i)
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    if args.kind == "date":
        day, counter = DateIncrGenerator.parse(args.id)
        out = {"id": args.id, "date": day.isoformat(), "counter": counter}
    else:
        p = _layout(args).parse(args.id)
        out = {
            "id": args.id,
            "timestamp_ms": p.timestamp_ms,
            "datetime": p.datetime.isoformat(),
            "worker_id": p.worker_id,
            "sequence": p.sequence,
        }
    print(json.dumps(out))
    return 0


def _codec(args: argparse.Namespace) -> PublicIdCodec:
    key = args.key or os.environ.get("IDGEN_PUBLIC_KEY")
    if not key:
        raise SystemExit("encode/decode need --key or IDGEN_PUBLIC_KEY")
    return PublicIdCodec(key)


def _cmd_encode(args: argparse.Namespace) -> int:
    print(_codec(args).encode(args.id))
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    print(_codec(args).decode(args.public_id))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m idgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    layout = argparse.ArgumentParser(add_help=False)
    layout.add_argument("--epoch-ms", type=int, default=DEFAULT_EPOCH_MS)
    layout.add_argument("--worker-bits", type=int, default=10)
    layout.add_argument("--sequence-bits", type=int, default=12)

    sf = sub.add_parser("snowflake", parents=[layout], help="print new snowflake ids")
    sf.add_argument("--count", type=int, default=1)
    sf.add_argument("--worker-id", type=int)
    sf.add_argument("--redis-url")
    sf.add_argument("--prefix", default="idgen", help="Redis key prefix of the leases")
    sf.set_defaults(func=_cmd_snowflake)

    dt = sub.add_parser("date", help="print new yyyymmdd+counter ids (needs Redis)")
    dt.add_argument("--count", type=int, default=1)
    dt.add_argument("--segment", type=int, default=1)
    dt.add_argument("--redis-url")
    dt.add_argument("--prefix", default="idgen", help="Redis key prefix of the counters")
    dt.set_defaults(func=_cmd_date)

    pa = sub.add_parser("parse", parents=[layout], help="show the fields of an id")
    pa.add_argument("id", type=int)
    pa.add_argument("--kind", choices=["snowflake", "date"], default="snowflake")
    pa.set_defaults(func=_cmd_parse)

    en = sub.add_parser("encode", help="public form of an id")
    en.add_argument("id", type=int)
    en.add_argument("--key")
    en.set_defaults(func=_cmd_encode)

    de = sub.add_parser("decode", help="id behind a public form")
    de.add_argument("public_id")
    de.add_argument("--key")
    de.set_defaults(func=_cmd_decode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
