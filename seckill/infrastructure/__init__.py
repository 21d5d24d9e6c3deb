"""The engine's bottom layer: how it talks to Redis. Everything above (stock, queue, locks,
rate limits, token cache, reconciler) takes its client, runs its Lua and backs off from an
outage through these modules, and nothing here knows about sales, orders or HTTP.

- :mod:`.redis_client`: the process-wide client, with fail-fast timeouts and retry.
- :mod:`.lua`: the one way the engine runs a Lua script (EVALSHA, reloaded after NOSCRIPT).
- :mod:`.backoff`: skip Redis for a while after a failure, for callers with a fallback.
"""
