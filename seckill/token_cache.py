"""The API token cache: token -> user answered from the app's Redis instead of one ORM query per
request (``seckill.api.authentication`` is the DRF class that calls it).

Why: DRF's ``TokenAuthentication`` runs ``Token.objects.select_related("user").get(key=...)`` on
every request — about a millisecond of SQL compilation and a database round trip on each order
of a flash sale. Here a hit is one Redis ``GET``: the key is ``auth:token:<sha256 of the token>``
(the token itself never appears in a key name, ``SCAN`` or ``MONITOR`` output), the value a small
JSON of the user fields the app reads from ``request.user`` (:data:`USER_FIELDS`). The user is
rebuilt with ``from_db``, so any other attribute still loads lazily from the database. A miss is
DRF's own lookup, then a store with a TTL of :data:`TTL` seconds.

Revocation is immediate in every process: saving or deleting a token, or saving or deleting a
user, overwrites the cache keys of the tokens concerned with a short-lived tombstone: at once
and again when the transaction commits. While a tombstone is there, lookups go to the
database and stores (``SET NX``) fail, so a request that read the row just before the change
(or before it committed) cannot put the old answer back. Changes made without signals
(``QuerySet.update()``, raw SQL) are only seen after the TTL.

Redis down: authentication falls back to the database lookup (never a 500, never a 401 caused
by the cache), and skips Redis for :data:`REDIS_RETRY_AFTER` seconds, as the throttles do, so
each request does not wait for a dead socket first. Invalidation always tries Redis and logs
when it cannot reach it: an entry that survives an outage expires within the TTL.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from functools import partial

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import router, transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_delete

from seckill.infrastructure.backoff import RedisBackoff
from seckill.infrastructure.redis_client import get_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "auth:token"
TTL = 300  # seconds a cached token lives without being revoked
TOMBSTONE_TTL = 60  # seconds after a change during which the token is not cached again
REDIS_RETRY_AFTER = 5.0  # seconds to go straight to the database after a Redis failure
# What the API reads from request.user (pk, is_staff via permissions, is_active for DRF's check).
USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")
TOMBSTONE = b"-"

_backoff = RedisBackoff(REDIS_RETRY_AFTER)


def cache_key(token_key: str) -> str:
    """The Redis key for a token: a digest, so the secret never shows up in key listings."""
    return f"{KEY_PREFIX}:{hashlib.sha256(token_key.encode()).hexdigest()[:40]}"


def lookup(token_model: type[Model], key: str) -> tuple[AbstractBaseUser, Model] | None:
    """(user, token) for an API token key from the cache, or None (a miss, a tombstone, Redis
    away): then the caller looks the token up in the database and :func:`remember` s it."""
    rkey = cache_key(key)
    cached = _redis_call(lambda client: client.get(rkey))
    return from_entry(token_model, key, cached) if cached else None


def remember(tokens: Iterable[tuple[str, AbstractBaseUser]]) -> None:
    """Cache these (token key, active user) pairs, in one round trip. Signing in calls it, so a
    buyer's first API request after signing in is already a hit (the crowd of a flash sale
    signs in before the sale starts, then every one of them buys once)."""
    entries = [(cache_key(key), _entry(user)) for key, user in tokens if user.is_active]
    if not entries:
        return

    def store(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for rkey, entry in entries:
            pipe.set(rkey, entry, ex=TTL, nx=True)  # NX: never over a revocation's tombstone
        pipe.execute()

    _redis_call(store)


def _entry(user: AbstractBaseUser) -> str:
    return json.dumps({name: getattr(user, name) for name in USER_FIELDS})


def from_entry(token_model: type[Model], key: str, cached: bytes) -> tuple | None:
    """(user, token) from a cache entry; None for a tombstone or an entry this code did not
    write (say, by a release with other fields), which the caller treats as a miss. An
    inactive user is returned as such (never stored so): the caller applies DRF's rule."""
    try:
        entry = json.loads(cached)
    except ValueError:
        return None
    if not isinstance(entry, dict) or set(entry) != set(USER_FIELDS):
        return None
    user_model = get_user_model()
    # from_db wants the values in the model's field order; the rest stay deferred (lazy).
    names = [f.attname for f in user_model._meta.concrete_fields if f.attname in entry]
    user = user_model.from_db(
        router.db_for_read(user_model), names, [entry[name] for name in names]
    )
    token = token_model.from_db(router.db_for_read(token_model), ["key", "user_id"], [key, user.pk])
    token.user = user
    return user, token


def _redis_call(command):
    """Run ``command(client)``; on any Redis error return None and leave Redis alone for
    REDIS_RETRY_AFTER seconds in this process (the cache is an optimisation, never a failure)."""
    if not _backoff.available():
        return None
    try:
        return command(get_redis())
    except redis.exceptions.RedisError as exc:
        _backoff.failed()
        log.warning("token cache: Redis unavailable (%s); authenticating from the database", exc)
        return None


def redis_usable() -> bool:
    """False while this process authenticates from the database after a Redis failure."""
    return _backoff.available()


def redis_failed() -> None:
    """Another reader of the cache (the admission gate) saw Redis fail: skip it for a while."""
    _backoff.failed()
    log.warning("token cache: Redis unavailable; authenticating from the database")


def reset_fallback() -> None:
    """Try Redis again at once (tests)."""
    _backoff.reset()


# --- revocation ---------------------------------------------------------------------------


def forget_tokens(token_keys: Iterable[str], using: str | None = None) -> None:
    """Make every process stop trusting its cached entry for these tokens: now, and again when
    the current transaction on ``using`` commits (a request that read the old rows in between
    must not be able to cache them)."""
    rkeys = [cache_key(key) for key in token_keys]
    if not rkeys:
        return
    _tombstone(rkeys)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(partial(_tombstone, rkeys), using=using)


def _tombstone(rkeys: list[str]) -> None:
    # Not through _redis_call: a revocation must try Redis even while lookups skip it.
    try:
        pipe = get_redis().pipeline(transaction=False)
        for rkey in rkeys:
            pipe.set(rkey, TOMBSTONE, ex=TOMBSTONE_TTL)
        pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.error(
            "token cache: could not revoke %d cached token(s) (%s); they expire within %d s",
            len(rkeys),
            exc,
            TTL,
        )


def _token_saved(sender, instance: Model, using: str, created: bool, **kwargs) -> None:
    # A new key cannot be cached yet; tombstoning it would only keep it out of the cache.
    if not created:
        forget_tokens([instance.pk], using)


def _token_deleted(sender, instance: Model, using: str, **kwargs) -> None:
    forget_tokens([instance.pk], using)


def _user_saved(
    sender, instance: Model, using: str, created: bool, update_fields=None, **kwargs
) -> None:
    # A new user has no token yet; a save of other fields only (last_login) changes nothing cached.
    if created or (update_fields is not None and not set(update_fields) & set(USER_FIELDS)):
        return
    _user_changed(sender, instance, using)


def _user_changed(sender, instance: Model, using: str, **kwargs) -> None:
    from rest_framework.authtoken.models import Token

    keys = Token.objects.using(using).filter(user_id=instance.pk).values_list("key", flat=True)
    forget_tokens(list(keys), using)


def connect_signals() -> None:
    """Hook revocation to Token and user changes (called from ``SeckillConfig.ready``).
    A deleted user's tokens are cascade-deleted with their own post_delete; pre_delete on the
    user covers them too while they can still be found."""
    from rest_framework.authtoken.models import Token

    user_model = settings.AUTH_USER_MODEL
    post_save.connect(_token_saved, sender=Token, dispatch_uid="token_cache_token_saved")
    post_delete.connect(_token_deleted, sender=Token, dispatch_uid="token_cache_token_deleted")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="token_cache_user_saved")
    pre_delete.connect(_user_changed, sender=user_model, dispatch_uid="token_cache_user_deleted")
