"""One Redis connection pool per URL for the whole process.

Django keeps a cache backend per request context, and its Redis client builds a pool per backend, so every
request opened a fresh TCP connection to Redis (py-spy: ~5 % of a run request's CPU in `connect`). Named as
the cache's `pool_class`, this hands every backend the process's pool for the URL instead.
"""

import threading

import redis

_lock = threading.Lock()
_pools: dict[tuple, redis.ConnectionPool] = {}


class SharedConnectionPool(redis.ConnectionPool):
    @classmethod
    def from_url(cls, url: str, **kwargs) -> redis.ConnectionPool:
        key = (url, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
        return pool
