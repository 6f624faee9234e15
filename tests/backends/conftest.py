"""The ``store_factory`` fixture: every store adapter the suite runs against.

Each backend is one row of :data:`BACKENDS`: its marker (so ``pytest -m redis``
runs one backend) and an opener that returns a fresh, empty, isolated store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before the suite is imported, so its assertions get pytest's detailed messages.
pytest.register_assert_rewrite("flowkit.testing.conformance")

from flowkit import Store  # noqa: E402 - after register_assert_rewrite
from flowkit.backends.memory import MemoryStore  # noqa: E402
from flowkit.backends.sqlalchemy import SQLStore  # noqa: E402

from .sql_helpers import MYSQL_URL, POSTGRESQL_URL, scratch_store  # noqa: E402

#: Opens store number ``n`` of a test; ``directory`` is the test's temporary
#: directory (for SQLite files). Server-backed openers should read their URL
#: from an environment variable, skip when it is unset, and use a unique table
#: or key prefix per store.
Opener = Callable[[Path, int], Store]


def _memory(directory: Path, n: int) -> Store:
    # warn=False: pytest turns warnings into errors; test_memory.py checks the warning.
    return MemoryStore("memory://", warn=False)


def _sqlite(directory: Path, n: int) -> Store:
    return SQLStore(f"sqlite:///{directory}/store-{n}.db")


def _postgresql(directory: Path, n: int) -> Store:
    return scratch_store(POSTGRESQL_URL)  # a fresh table prefix, dropped on close


def _mysql(directory: Path, n: int) -> Store:
    return scratch_store(MYSQL_URL)  # MariaDB or MySQL; a fresh prefix, dropped on close


def _redis(directory: Path, n: int) -> Store:
    from .redis_helpers import scratch_store as redis_store  # imports redis-py only when used

    return redis_store()  # a fresh key prefix, its keys deleted on close


#: name -> (marker, opener). Add sqlite, postgresql, mysql and redis rows here.
BACKENDS: dict[str, tuple[pytest.MarkDecorator, Opener]] = {
    "memory": (pytest.mark.memory, _memory),
    "sqlite": (pytest.mark.sqlite, _sqlite),
    "postgresql": (pytest.mark.postgresql, _postgresql),
    "mysql": (pytest.mark.mysql, _mysql),
    "redis": (pytest.mark.redis, _redis),
}


@pytest.fixture(
    params=[pytest.param(name, marks=marker, id=name) for name, (marker, _) in BACKENDS.items()]
)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A callable returning a fresh, empty store; closes every store it made."""
    _, opener = BACKENDS[request.param]
    created: list[Store] = []

    def factory() -> Store:
        store = opener(tmp_path, len(created))
        created.append(store)
        return store

    yield factory
    for store in created:
        store.close()
