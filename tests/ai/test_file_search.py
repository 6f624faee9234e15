"""The ``file_search`` step: real ranked search (SQLite FTS5, BM25), cached and refreshed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowkit
from flowkit.ai._file_search import FileIndex, chunks, default_index

EngineFactory = Callable[..., flowkit.Engine]

REFUNDS = """\
# Refunds

Refunds are issued to the original payment method within 5 business days.
A refund can be partial or full.

To request a refund, contact billing with your order number.
"""

PASSWORDS = """\
# Accounts

To reset your password, open the login page and choose "Forgot password".
The reset email expires after one hour.

Two-factor authentication can be enabled in the account settings.
"""

SHIPPING = """\
# Shipping

Orders ship within two days. Tracking numbers are emailed when the order ships.
International shipping takes up to two weeks.
"""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "refunds.md").write_text(REFUNDS)
    (folder / "docs" / "accounts.md").write_text(PASSWORDS)
    (folder / "docs" / "shipping.md").write_text(SHIPPING)
    (folder / "notes.txt").write_text("refund refund refund: internal note about refunds\n")
    return folder


def search_workflow(folder: Path, files: Any = ("docs/*.md",), max_results: int = 5) -> Path:
    """A YAML workflow in ``folder`` whose file_search step searches ``files``."""
    path = folder / "search.yml"
    listed = (
        "\n".join(f'      - "{item}"' for item in files) if not isinstance(files, str) else None
    )
    files_yaml = f"\n{listed}" if listed is not None else f" {files}"
    path.write_text(
        f"""\
id: search
inputs:
  question: {{type: string}}
  paths: {{type: array, required: false}}
steps:
  - id: start
    type: start
    next: find
  - id: find
    type: file_search
    query: $input.question
    files:{files_yaml}
    max_results: {max_results}
    output: hits
"""
    )
    return path


def hits(engine: flowkit.Engine, wf: Path, question: str, **input: Any) -> list[dict[str, Any]]:
    result = engine.run(flowkit.load(wf), {"question": question, **input})
    assert result.completed, result.error
    found: list[dict[str, Any]] = engine.load(result.execution_id).ctx["hits"]
    return found


def test_results_are_ranked_with_line_numbers_and_snippets(
    make_engine: EngineFactory, docs: Path
) -> None:
    found = hits(make_engine(), search_workflow(docs), "how do I reset my password")
    assert found[0]["file"] == "docs/accounts.md"
    assert found[0]["line"] == 3
    assert "reset your password" in found[0]["snippet"]
    assert set(found[0]) == {"file", "line", "score", "snippet"}
    scores = [hit["score"] for hit in found]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_the_best_chunk_wins_across_files(make_engine: EngineFactory, docs: Path) -> None:
    found = hits(make_engine(), search_workflow(docs), "refund to the original payment method")
    assert (found[0]["file"], found[0]["line"]) == ("docs/refunds.md", 3)
    assert {hit["file"] for hit in found} <= {
        "docs/refunds.md",
        "docs/accounts.md",
        "docs/shipping.md",
    }  # notes.txt is not searched


def test_stemming_matches_other_forms_of_a_word(make_engine: EngineFactory, docs: Path) -> None:
    found = hits(make_engine(), search_workflow(docs), "shipped")
    assert {hit["file"] for hit in found} == {"docs/shipping.md"}
    assert "ship" in found[0]["snippet"].lower()


def test_max_results_limits_the_list(make_engine: EngineFactory, docs: Path) -> None:
    found = hits(make_engine(), search_workflow(docs, max_results=1), "the")
    assert len(found) == 1


def test_a_query_that_matches_nothing_returns_an_empty_list(
    make_engine: EngineFactory, docs: Path
) -> None:
    assert hits(make_engine(), search_workflow(docs), "kubernetes helm chart") == []
    assert hits(make_engine(), search_workflow(docs), "?!* ") == []


def test_fts_syntax_in_the_query_is_just_text(make_engine: EngineFactory, docs: Path) -> None:
    found = hits(make_engine(), search_workflow(docs), 'password" OR NEAR(refund AND "')
    assert found  # no FTS5 syntax error; the words are searched
    assert {hit["file"] for hit in found} == {"docs/accounts.md", "docs/refunds.md"}


def test_paths_and_globs_are_relative_to_the_workflow_file(
    make_engine: EngineFactory, docs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    wf = search_workflow(docs, files=("notes.txt", "**/refunds.md"))
    found = hits(make_engine(), wf, "refund")
    assert {hit["file"] for hit in found} == {"notes.txt", "docs/refunds.md"}


def test_a_workflow_without_a_file_searches_from_the_working_directory(
    make_engine: EngineFactory, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docs)
    text = search_workflow(docs).read_text()
    engine = make_engine()
    result = engine.run(flowkit.load(text), {"question": "tracking numbers"})
    assert result.completed, result.error
    assert engine.load(result.execution_id).ctx["hits"][0]["file"] == "docs/shipping.md"


def test_files_can_come_from_a_reference(make_engine: EngineFactory, docs: Path) -> None:
    wf = search_workflow(docs, files="$input.paths")
    found = hits(make_engine(), wf, "tracking", paths=[str(docs / "docs" / "shipping.md")])
    assert [hit["file"] for hit in found] == ["docs/shipping.md"]


def test_a_missing_file_is_an_error_but_an_empty_glob_is_not(
    make_engine: EngineFactory, docs: Path
) -> None:
    engine = make_engine()
    assert hits(engine, search_workflow(docs, files=("nothing/*.md",)), "refund") == []
    result = engine.run(flowkit.load(search_workflow(docs, files=("gone.md",))), {"question": "x"})
    assert result.failed
    assert result.error == (
        f"ExecutionError: step 'find': no file 'gone.md' (looked at {docs / 'gone.md'})"
    )


# --- the index ------------------------------------------------------------------------------------


def test_chunks_are_paragraphs_with_their_first_line() -> None:
    assert list(chunks("a\nb\n\n\nc\n")) == [(1, "a\nb"), (5, "c")]
    long = "\n".join(f"line {n}" for n in range(1, 46))
    assert [line for line, _ in chunks(long)] == [1, 21, 41]


def test_the_index_is_cached_and_refreshed_when_a_file_changes(docs: Path) -> None:
    index = FileIndex(docs / "cache.sqlite3")
    files = sorted((docs / "docs").glob("*.md"))
    index.search("refund", files, 5)
    assert sorted(index.indexed) == sorted(str(f) for f in files)

    again = FileIndex(docs / "cache.sqlite3")  # a new process would see the same database
    assert again.search("refund payment method", files, 5)[0]["line"] == 3
    assert again.indexed == []  # nothing was read again

    shipping = docs / "docs" / "shipping.md"
    shipping.write_text(SHIPPING + "\nRefunds for lost parcels are automatic.\n")
    stat = shipping.stat()
    os.utime(shipping, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    found = again.search("lost parcels refund", files, 5)
    assert again.indexed == [str(shipping)]
    assert (Path(found[0]["file"]).name, found[0]["line"]) == ("shipping.md", 6)

    shipping.write_text("Nothing to see.\n")
    os.utime(shipping, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    found = again.search("lost parcels", files, 5)
    assert found == []  # the old chunks of the file are gone


def test_the_step_uses_the_cache_directory(
    make_engine: EngineFactory, docs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWKIT_AI_CACHE_DIR", str(tmp_path / "my-cache"))
    hits(make_engine(), search_workflow(docs), "refund")
    assert (tmp_path / "my-cache" / "file_search.sqlite3").is_file()
    index = default_index()
    before = list(index.indexed)
    hits(make_engine(), search_workflow(docs), "password")
    assert index.indexed == before  # unchanged files are not indexed again


def test_binary_files_are_skipped(docs: Path) -> None:
    (docs / "image.bin").write_bytes(b"\x89PNG\0\0refund")
    index = FileIndex(docs / "cache.sqlite3")
    assert index.search("refund", [docs / "image.bin"], 5) == []
