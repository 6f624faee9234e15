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

Each step reads only under one root directory: the one given to
:func:`configure_file_search`, else the directory of the file that defines the
workflow (the YAML file, or the Python module of a ``flowkit.Workflow``), else
(a workflow given as text or a dict) the working directory. Paths and globs in
``files`` are relative to the root; an absolute path, ``~`` or ``..`` is
refused, and so is a symbolic link that leads out of the root, whether a path
names it or a glob walks through it. At most ``max_files`` files are searched
(default :data:`MAX_FILES`), each of at most ``max_file_bytes`` (default
:data:`MAX_FILE_BYTES`). Results name files relative to the root.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ConfigError, ExecutionError

from ._definitions import FileSearchConfig
from ._dsl import build_file_search

__all__ = [
    "MAX_CHUNK_LINES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "FileIndex",
    "FileSearchStep",
    "cache_dir",
    "chunks",
    "configure_file_search",
    "default_index",
    "find_files",
]

MAX_CHUNK_LINES = 20
MAX_FILE_BYTES = 20 * 1024 * 1024
"""The default limit on the size of one file a step searches."""
MAX_FILES = 1000
"""The default limit on the number of files one step searches."""
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

    def refresh(self, files: Sequence[Path], max_file_bytes: int = MAX_FILE_BYTES) -> None:
        """Index the files that are new or changed since they were last indexed.

        Raises:
            ExecutionError: a file cannot be read, or is larger than ``max_file_bytes``.
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
                text = self._read(file, stat.st_size, max_file_bytes)
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
    def _read(file: Path, size: int, max_file_bytes: int) -> str:
        if size > max_file_bytes:
            raise ExecutionError(
                f"'{file}' is {size} bytes, over the limit of {max_file_bytes} bytes per file; "
                "raise it with flowkit.ai.configure_file_search(max_file_bytes=...)"
            )
        try:
            with file.open("rb") as stream:
                data = stream.read(size)  # no more than was checked, should the file grow
        except OSError as exc:
            raise ExecutionError(f"cannot read '{file}': {exc.strerror}") from None
        if b"\0" in data[:8192]:
            return ""  # a binary file: nothing to search
        return data.decode("utf-8", errors="replace")

    def search(
        self,
        query: str,
        files: Sequence[Path],
        limit: int,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> list[dict[str, Any]]:
        """The best chunks of ``files`` for ``query``, best first.

        Returns:
            ``{"file", "line", "score", "snippet"}`` per chunk, where ``file``
            is the absolute path; ``[]`` when nothing matches.

        Raises:
            ExecutionError: a file cannot be read, or is larger than ``max_file_bytes``.
        """
        self.refresh(files, max_file_bytes)
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


# --- where a step may read ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Limits:
    """Where ``file_search`` steps read and how much (see :func:`configure_file_search`)."""

    root: Path | None = None
    max_file_bytes: int = MAX_FILE_BYTES
    max_files: int = MAX_FILES


_limits = _Limits()


def configure_file_search(
    root: str | os.PathLike[str] | None = None,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_files: int = MAX_FILES,
) -> None:
    """Confine every ``file_search`` step of this process to ``root``, and set its limits.

    Without ``root`` each step reads under its workflow file's directory (see
    the module docs). Calling it again replaces what was set;
    ``configure_file_search()`` restores the defaults.

    Raises:
        ConfigError: ``root`` is not a directory, or a limit is not a positive integer.
    """
    global _limits
    for name, value in (("max_file_bytes", max_file_bytes), ("max_files", max_files)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"file_search: {name} must be a positive integer, got {value!r}")
    resolved = None
    if root is not None:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise ConfigError(f"file_search: the root '{root}' is not a directory")
    _limits = _Limits(root=resolved, max_file_bytes=max_file_bytes, max_files=max_files)


def root_dir(run: Runtime) -> Path:
    """The directory a step reads under (see the module docs), with symbolic links resolved."""
    if _limits.root is not None:
        return _limits.root
    source = run.workflow.source
    if source is not None and source.file and Path(source.file).is_file():
        return Path(source.file).resolve().parent
    return Path.cwd().resolve()


def find_files(patterns: Any, root: Path, where: str, max_files: int) -> list[tuple[Path, str]]:
    """The files ``patterns`` name under ``root``: ``(real path, path relative to root)``.

    Sorted by the relative path, without duplicates. ``root`` must be resolved.

    Raises:
        ExecutionError: ``patterns`` is not a path or a list of paths; a path
            is absolute or climbs with ``..``; a path without glob characters
            does not exist; a path, or a directory a glob walks through, leads
            out of ``root``; more than ``max_files`` files match.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ExecutionError(f"{where}: 'files' must be a path or a list of paths and globs")
    found: dict[Path, str] = {}
    for pattern in patterns:
        walk = _Walk(root=root, where=where, pattern=pattern)
        matched = False
        for path in walk.paths(walk.parts()):
            matched = True
            real = walk.real(path)
            if not os.path.isfile(real):
                continue
            found.setdefault(real, real.relative_to(root).as_posix())
            if len(found) > max_files:
                raise ExecutionError(
                    f"{where}: 'files' match more than {max_files} files (reached with "
                    f"'{pattern}'); narrow the paths and globs, or raise the limit with "
                    "flowkit.ai.configure_file_search(max_files=...)"
                )
        if not matched and not glob.has_magic(pattern):
            raise ExecutionError(f"{where}: no file '{pattern}' (looked at {root / pattern})")
    return sorted(found.items(), key=lambda item: item[1])


@attrs.frozen(kw_only=True)
class _Walk:
    """The paths one pattern of ``files`` matches, never leaving ``root``.

    Globs match like :func:`glob.glob` with ``recursive=True``: ``*``, ``?``
    and ``[...]`` within one name, ``**`` for any number of directories, and
    names starting with a dot only when the pattern's name does. Every
    directory is checked before it is listed or entered.
    """

    root: Path
    where: str
    pattern: str

    def parts(self) -> list[str]:
        """The pattern's names, once it is known to stay under the root."""
        path = Path(self.pattern)
        if path.anchor or self.pattern.startswith("~"):
            raise ExecutionError(
                f"{self.where}: '{self.pattern}' is not a relative path; 'files' names files "
                f"under the root directory '{self.root}' with relative paths and globs"
            )
        if "\0" in self.pattern:
            raise ExecutionError(f"{self.where}: {self.pattern!r} contains a NUL character")
        parts = list(path.parts)  # without empty names and '.'
        if ".." in parts:
            raise ExecutionError(
                f"{self.where}: '{self.pattern}' goes up with '..'; file_search reads only "
                f"under the root directory '{self.root}'"
            )
        return parts

    def real(self, path: Path) -> Path:
        """``path`` with symbolic links resolved, when that stays under the root."""
        real = path.resolve()
        if not real.is_relative_to(self.root):
            shown = path.relative_to(self.root).as_posix()
            matched = "" if shown == self.pattern else f" (matched by '{self.pattern}')"
            raise ExecutionError(
                f"{self.where}: '{shown}'{matched} leads out of the root directory "
                f"'{self.root}' through a symbolic link; file_search reads only under its root"
            )
        return real

    def paths(self, parts: Sequence[str], directory: Path | None = None) -> Iterator[Path]:
        """The paths under ``directory`` (default: the root) that ``parts`` match."""
        directory = self.root if directory is None else directory
        if not parts:
            yield directory
            return
        part, rest = parts[0], parts[1:]
        if part == "**":
            for below in self._directories(directory, set()):
                yield from self.paths(rest or ["*"], below)
        elif glob.has_magic(part):
            for name in self._names(directory, part):
                yield from self._into(directory / name, rest)
        elif os.path.exists(directory / part):
            yield from self._into(directory / part, rest)

    def _into(self, path: Path, rest: Sequence[str]) -> Iterator[Path]:
        if not rest:
            yield path
        elif os.path.isdir(self.real(path)):
            yield from self.paths(rest, path)

    def _names(self, directory: Path, pattern: str) -> list[str]:
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        hidden = pattern.startswith(".")
        return sorted(
            name
            for name in names
            if fnmatch.fnmatch(name, pattern) and (hidden or not name.startswith("."))
        )

    def _directories(self, directory: Path, seen: set[Path]) -> Iterator[Path]:
        """``directory`` and every directory below it (``**``), each once."""
        real = self.real(directory)
        if real in seen:
            return  # a symbolic link back to a directory already walked
        seen.add(real)
        yield directory
        for name in self._names(directory, "*"):
            if os.path.isdir(directory / name):
                yield from self._directories(directory / name, seen)


class FileSearchStep(StepType):
    """The ``file_search`` step type."""

    name = "file_search"
    config = FileSearchConfig
    build = staticmethod(build_file_search)

    def run(self, run: Runtime) -> Outcome:
        config: FileSearchConfig = run.step.config
        limits = _limits
        where = f"step '{run.path}'"
        query = run.resolve(config.query)
        if not isinstance(query, str):
            raise ExecutionError(f"{where}: 'query' must be text, got {query!r:.80}")
        files = find_files(run.resolve(config.files), root_dir(run), where, limits.max_files)
        names = dict(files)
        try:
            hits = default_index().search(
                query,
                [path for path, _ in files],
                config.max_results,
                max_file_bytes=limits.max_file_bytes,
            )
        except ExecutionError as exc:
            raise ExecutionError(f"{where}: {exc}") from None
        results = [{**hit, "file": names[Path(hit["file"])]} for hit in hits]
        updates = {config.output: results} if config.output is not None else {}
        return Outcome(
            target=run.step.next,
            updates=updates,
            output=results,
            input={"query": query, "files": [name for _, name in files]},
        )
