"""The one way the engine runs a Lua script: registered once per client and source, sent as
EVALSHA, loaded again by redis-py by itself after a Redis restart (NOSCRIPT).

One way, so every script of the engine survives a restart and a failover alike, and costs the
same one round trip (the lock library, which imports nothing of the engine, has its own).
:func:`run_pipelined` sends several calls in one non-transactional pipeline: on a Redis Cluster
a cluster pipeline, which groups the calls by node (one round trip per node, in parallel), for
scripts whose keys cannot share a slot. There each call names its node itself: redis-py 8's
cluster pipeline would otherwise ask a node for the keys of every EVALSHA (``COMMAND GETKEYS``,
a round trip each, one after another, before the pipeline even goes out), which the client's
own ``determine_slot`` reads from the arguments. A call that meets MOVED or ASK is sent again
by redis-py, routed by its keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from seckill.infrastructure.redis_client import AppRedis, get_redis, is_cluster

_registered: dict[tuple[int, str], Script] = {}

#: One script call: (source, keys, args).
ScriptCall = tuple[str, Sequence[str], Sequence[Any]]


def registered_script(source: str, client: AppRedis | None = None) -> Script:
    """A Lua script registered once per client and source: calls go out as EVALSHA, and
    redis-py loads the script again by itself after a Redis restart (NOSCRIPT)."""
    client = client or get_redis()
    key = (id(client), source)
    found = _registered.get(key)
    if found is None:
        found = _registered[key] = client.register_script(source)
    return found


def run_pipelined(calls: Sequence[ScriptCall], client: AppRedis | None = None) -> list[Any]:
    """Every call's result, the calls sent as EVALSHA in one non-transactional pipeline.

    A cluster pipeline does not load missing scripts by itself (a restarted or promoted node
    starts with an empty script cache): on NOSCRIPT the missing scripts are loaded on every
    master (``SCRIPT LOAD`` goes to all of them) and only the calls NOSCRIPT refused -- which
    therefore never ran -- are sent once more. The first other error is raised."""
    client = client or get_redis()
    scripts = [registered_script(source, client) for source, _, _ in calls]
    results = _send(client, scripts, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
    if missing:
        for source in {calls[i][0] for i in missing}:
            client.script_load(source)
        again = _send(client, [scripts[i] for i in missing], [calls[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _send(client: AppRedis, scripts: list[Script], calls: Sequence[ScriptCall]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    on_cluster = is_cluster(client)
    for script, (_, keys, args) in zip(scripts, calls, strict=True):
        # execute_command: redis-py blocks ClusterPipeline.evalsha() because a cluster
        # pipeline cannot load a missing script by itself; run_pipelined does that.
        route = {"target_nodes": client.get_node_from_key(keys[0])} if on_cluster and keys else {}
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **route)
    return pipe.execute(raise_on_error=False)
