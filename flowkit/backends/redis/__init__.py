"""The Redis store: ``redis://``, ``rediss://`` (TLS) and ``unix://`` (a local socket).

One hash per execution, its ctx values in a hash of their own (so that a
checkpoint writes only the values that changed), one list of entries and one
mailbox per execution, a hash per schedule, and sorted-set indexes that answer
``find``, ``due``, ``stale`` and ``prune``; every write is one Lua script.
See :class:`RedisStore` and the Stores page of the documentation.
"""

from ._store import RedisStore

__all__ = ["RedisStore"]
