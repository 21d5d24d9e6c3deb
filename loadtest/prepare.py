"""Set a run up before it is measured: buyers with API tokens, and a fresh live sale.

Runs as ``python -m loadtest.prepare …`` in a subprocess with the servers' environment, so it
writes to exactly the database and Redis they use. Buyers are created in bulk through the ORM
(registering thousands through the API would measure the password hasher, not the sale) and are
reused by later runs; each run gets its own sale, reset so its Redis mirror is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

BUYER = "loadtest-buyer-{:05d}"
GREEDY = "loadtest-greedy-{:02d}"


def ensure_buyers(names: list[str]) -> list[str]:
    """API tokens for these usernames, creating the missing accounts (no usable password).

    The buyers are then signed in, as a real crowd is before the sale opens: their tokens are in
    the token cache, as ``POST /api/v1/auth/token/`` leaves them."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from seckill.token_cache import remember

    accounts = get_user_model().objects
    with transaction.atomic():
        existing = set(accounts.filter(username__in=names).values_list("username", flat=True))
        missing = [accounts.model(username=name) for name in names if name not in existing]
        for user in missing:
            user.set_unusable_password()
        accounts.bulk_create(missing, batch_size=1000)
        users = dict(accounts.filter(username__in=names).values_list("username", "pk"))
        tokens = Token.objects.filter(user_id__in=users.values())
        have = set(tokens.values_list("user_id", flat=True))
        new = [Token(key=Token.generate_key(), user_id=u) for u in users.values() if u not in have]
        Token.objects.bulk_create(new, batch_size=1000)
        keys = dict(tokens.values_list("user_id", "key"))
    signed_in = accounts.in_bulk(list(users.values()))
    remember([(keys[pk], user) for pk, user in signed_in.items()])
    return [keys[users[name]] for name in names]


def create_sale(strategy: str, stock: int, per_user_limit: int, minutes: int = 60) -> int:
    """A live sale of a new product, reset (orders none, Redis mirror loaded)."""
    from django.utils import timezone

    from seckill.lifecycle import reset_sale
    from seckill.models import Sale
    from shop.models import Product

    now = timezone.now()
    product = Product.objects.create(
        name=f"Load test {strategy} {now:%Y%m%d-%H%M%S.%f}", price=Decimal("19.99")
    )
    sale = Sale.objects.create(
        product=product,
        price=Decimal("9.99"),
        starts_at=now - timedelta(seconds=5),
        ends_at=now + timedelta(minutes=minutes),
        stock_total=stock,
        stock_left=stock,
        per_user_limit=per_user_limit,
        strategy=strategy,
    )
    reset_sale(sale.pk)
    return sale.pk


def prepare(
    *,
    users: int,
    greedy_accounts: int,
    strategies: list[str],
    stock: int,
    per_user_limit: int,
) -> dict:
    """Buyers, greedy accounts and one sale per strategy; JSON-able."""
    return {
        "tokens": ensure_buyers([BUYER.format(n) for n in range(1, users + 1)]),
        "greedy_tokens": ensure_buyers([GREEDY.format(n) for n in range(1, greedy_accounts + 1)]),
        "sales": {s: create_sale(s, stock, per_user_limit) for s in strategies},
        "stock": stock,
        "per_user_limit": per_user_limit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrate", action="store_true", help="run migrations first")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--greedy-accounts", type=int, default=1)
    parser.add_argument("--strategy", action="append", required=True)
    parser.add_argument("--stock", type=int, required=True)
    parser.add_argument("--per-user-limit", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest.settings")
    import django

    django.setup()
    if args.migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
    data = prepare(
        users=args.users,
        greedy_accounts=args.greedy_accounts,
        strategies=args.strategy,
        stock=args.stock,
        per_user_limit=args.per_user_limit,
    )
    args.out.write_text(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
