"""The ``file_search`` step: ranked full-text search over local files.

Files are split into chunks (paragraphs separated by blank lines; long
paragraphs into windows of at most :data:`MAX_CHUNK_LINES` lines), each
remembered with the line it starts at, and indexed in an SQLite FTS5 table
(Porter stemming) in a cache database. A search ranks chunks with BM25 and
returns ``{file, line, score, snippet}`` for the best ``max_results`` (higher
scores are better). A query that matches nothing returns ``[]``.

The index is cached in ``$FLOWKIT_AI_CACHE_DIR/file_search.sqlite3`` (default:
``$XDG_CACHE_HOME/flowkit`` or ``~/.cache/flowkit``), keyed by each file's
absolute path, modification time and size: a file that changed is re-indexed
before the next search, a file seen unchanged is not read again.

Relative paths and globs in ``files`` are resolved against the directory of
the file that defines the workflow (the YAML file, or the Python module of a
``flowkit.Workflow``); a workflow given as text or a dict uses the working
directory. Results name files as they were matched (relative to that
directory when they are inside it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ExecutionError

from ._definitions import FileSearchConfig
from ._dsl import build_file_search

__all__ = [
    "MAX_CHUNK_LINES",
    "FileIndex",
    "FileSearchStep",
    "cache_dir",
    "chunks",
    "default_index",
]

MAX_CHUNK_LINES = 20
MAX_FILE_BYTES = 20 * 1024 * 1024
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
    text, path UNINDEXED, line UNINDEXED, tokenize = 'porter unicode61'
);
"""
_WORD = re.compile(r"\w+", re.UNICODE)


def cache_dir() -> Path:
    """Where the search index is kept (see the module docs)."""
    configured = os.environ.get("FLOWKIT_AI_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flowkit"


def chunks(text: str) -> Iterator[tuple[int, str]]:
    """``(first line number, text)`` for each chunk of a file's text (lines count from 1)."""
    block: list[str] = []
    start = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if block:
                yield start, "\n".join(block)
                block = []
            continue
        if not block:
            start = number
        block.append(line)
        if len(block) >= MAX_CHUNK_LINES:
            yield start, "\n".join(block)
            block = []
    if block:
        yield start, "\n".join(block)


def _fts_query(query: str) -> str | None:
    """Any of the query's words (quoted, so FTS5 syntax in user text is inert)."""
    words = [word.lower() for word in _WORD.findall(query)]
    unique = list(dict.fromkeys(words))
    if not unique:
        return None
    return " OR ".join(f'"{word}"' for word in unique)


class FileIndex:
    """An FTS5 index of files in one SQLite database, refreshed as files change.

    Args:
        path: the database file (created with its directory when missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.indexed: list[str] = []  # files (re)indexed by this object, for tests and logs

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_SCHEMA)
        return connection

    def refresh(self, files: Sequence[Path]) -> None:
        """Index the files that are new or changed since they were last indexed.

        Raises:
            ExecutionError: a file cannot be read.
        """
        with self._lock, contextlib.closing(self._connect()) as db:
            for file in files:
                try:
                    stat = file.stat()
                except OSError as exc:
                    raise ExecutionError(f"cannot read '{file}': {exc.strerror}") from None
                key = str(file)
                row = db.execute(
                    "SELECT mtime_ns, size FROM files WHERE path = ?", (key,)
                ).fetchone()
                if row is not None and tuple(row) == (stat.st_mtime_ns, stat.st_size):
                    continue
                text = self._read(file, stat.st_size)
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DELETE FROM chunks WHERE path = ?", (key,))
                    db.executemany(
                        "INSERT INTO chunks (text, path, line) VALUES (?, ?, ?)",
                        [(chunk, key, line) for line, chunk in chunks(text)],
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO files (path, mtime_ns, size) VALUES (?, ?, ?)",
                        (key, stat.st_mtime_ns, stat.st_size),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                self.indexed.append(key)

    @staticmethod
    def _read(file: Path, size: int) -> str:
        if size > MAX_FILE_BYTES:
            raise ExecutionError(
                f"'{file}' is {size} bytes; file_search indexes files up to {MAX_FILE_BYTES}"
            )
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ExecutionError(f"cannot read '{file}': {exc.strerror}") from None
        if b"\0" in data[:8192]:
            return ""  # a binary file: nothing to search
        return data.decode("utf-8", errors="replace")

    def search(self, query: str, files: Sequence[Path], limit: int) -> list[dict[str, Any]]:
        """The best chunks of ``files`` for ``query``, best first.

        Returns:
            ``{"file", "line", "score", "snippet"}`` per chunk, where ``file``
            is the absolute path; ``[]`` when nothing matches.

        Raises:
            ExecutionError: a file cannot be read.
        """
        self.refresh(files)
        match = _fts_query(query)
        if match is None or not files:
            return []
        keys = [str(file) for file in files]
        marks = ", ".join("?" for _ in keys)
        sql = (
            "SELECT path, line, bm25(chunks) AS rank, "
            "snippet(chunks, 0, '', '', ' … ', 24) "
            f"FROM chunks WHERE chunks MATCH ? AND path IN ({marks}) "
            "ORDER BY rank, path, line LIMIT ?"
        )
        with self._lock, contextlib.closing(self._connect()) as db:
            rows = db.execute(sql, (match, *keys, limit)).fetchall()
        return [
            {"file": path, "line": int(line), "score": round(-rank, 4), "snippet": snippet}
            for path, line, rank, snippet in rows
        ]


_indexes: dict[Path, FileIndex] = {}
_indexes_lock = threading.Lock()


def default_index() -> FileIndex:
    """The index in :func:`cache_dir` (one object per database path in this process)."""
    path = (cache_dir() / "file_search.sqlite3").resolve()
    with _indexes_lock:
        index = _indexes.get(path)
        if index is None:
            index = _indexes[path] = FileIndex(path)
        return index


def base_dir(run: Runtime) -> Path:
    """The directory relative ``files`` are resolved against (see the module docs)."""
    source = run.workflow.source
    if source is not None and source.file and Path(source.file).is_file():
        return Path(source.file).resolve().parent
    return Path.cwd()


def expand(patterns: Any, base: Path, where: str) -> list[tuple[Path, str]]:
    """The files ``patterns`` name: ``(absolute path, displayed name)``, sorted, no duplicates.

    Raises:
        ExecutionError: ``patterns`` is not a path or a list of paths, or a
            path without glob characters does not exist.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ExecutionError(f"{where}: 'files' must be a path or a list of paths and globs")
    found: dict[Path, str] = {}
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        full = expanded if os.path.isabs(expanded) else str(base / expanded)
        if glob.has_magic(expanded):
            matches = sorted(glob.glob(full, recursive=True))
        elif os.path.exists(full):
            matches = [full]
        else:
            raise ExecutionError(f"{where}: no file '{pattern}' (looked at {full})")
        for match in matches:
            path = Path(match).resolve()
            if path.is_file():
                found.setdefault(path, _display(path, base))
    return sorted(found.items(), key=lambda item: item[1])


def _display(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


class FileSearchStep(StepType):
    """The ``file_search`` step type."""

    name = "file_search"
    config = FileSearchConfig
    build = staticmethod(build_file_search)

    def run(self, run: Runtime) -> Outcome:
        config: FileSearchConfig = run.step.config
        where = f"step '{run.path}'"
        query = run.resolve(config.query)
        if not isinstance(query, str):
            raise ExecutionError(f"{where}: 'query' must be text, got {query!r:.80}")
        files = expand(run.resolve(config.files), base_dir(run), where)
        names = dict(files)
        hits = default_index().search(query, [path for path, _ in files], config.max_results)
        results = [{**hit, "file": names[Path(hit["file"])]} for hit in hits]
        updates = {config.output: results} if config.output is not None else {}
        return Outcome(
            target=run.step.next,
            updates=updates,
            output=results,
            input={"query": query, "files": [name for _, name in files]},
        )
