"""The ``file_search`` step: real ranked search (SQLite FTS5, BM25), cached and refreshed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowkit
from flowkit.ai import configure_file_search
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
    found = hits(make_engine(), wf, "tracking", paths=["docs/shipping.md"])
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


# --- confinement to a root directory ------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the workflow's directory (``docs``' parent) that must never be read."""
    path = tmp_path / "secret.txt"
    path.write_text("password: hunter2\n")
    return path


def failure(engine: flowkit.Engine, wf: Path, **input: Any) -> str:
    """The error of a run of ``wf`` that must fail."""
    result = engine.run(flowkit.load(wf), {"question": "password", **input})
    assert result.failed, result
    assert result.error is not None
    return result.error


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/etc/pass*", "~/.bashrc", "~root/*"],
)
def test_absolute_paths_are_refused(
    make_engine: EngineFactory, docs: Path, secret: Path, path: str
) -> None:
    wf = search_workflow(docs, files="$input.paths")
    assert failure(make_engine(), wf, paths=[path]) == (
        f"ExecutionError: step 'find': '{path}' is not a relative path; 'files' names files "
        f"under the root directory '{docs}' with relative paths and globs"
    )
    absolute = str(secret)  # even a path written into the workflow itself
    assert failure(make_engine(), search_workflow(docs, files=(absolute,))).endswith(
        f"'{absolute}' is not a relative path; 'files' names files under the root directory "
        f"'{docs}' with relative paths and globs"
    )


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "../../../../../../etc/passwd", "../*.txt", "docs/../../secret.txt", ".."],
)
def test_dot_dot_is_refused(
    make_engine: EngineFactory, docs: Path, secret: Path, path: str
) -> None:
    wf = search_workflow(docs, files="$input.paths")
    assert failure(make_engine(), wf, paths=["docs/refunds.md", path]) == (
        f"ExecutionError: step 'find': '{path}' goes up with '..'; file_search reads only "
        f"under the root directory '{docs}'"
    )


def test_a_symlink_to_a_file_outside_the_root_is_refused(
    make_engine: EngineFactory, docs: Path, secret: Path
) -> None:
    (docs / "docs" / "passwords.md").symlink_to(secret)
    (docs / "passwd").symlink_to("/etc/passwd")
    engine = make_engine()
    assert failure(engine, search_workflow(docs, files=("docs/passwords.md",))) == (
        f"ExecutionError: step 'find': 'docs/passwords.md' leads out of the root directory "
        f"'{docs}' through a symbolic link; file_search reads only under its root"
    )
    assert failure(engine, search_workflow(docs, files=("docs/*.md",))) == (
        f"ExecutionError: step 'find': 'docs/passwords.md' (matched by 'docs/*.md') leads out "
        f"of the root directory '{docs}' through a symbolic link; file_search reads only under "
        "its root"
    )
    assert failure(engine, search_workflow(docs, files="$input.paths"), paths=["pass*"]).endswith(
        f"'passwd' (matched by 'pass*') leads out of the root directory '{docs}' through a "
        "symbolic link; file_search reads only under its root"
    )


def test_a_glob_does_not_walk_through_a_symlinked_directory_out_of_the_root(
    make_engine: EngineFactory, docs: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("password: hunter2\n")
    (docs / "docs" / "shared").symlink_to(outside, target_is_directory=True)
    (docs / "etc").symlink_to("/etc", target_is_directory=True)
    engine = make_engine()
    for files, shown in [
        ("**/*.md", "'docs/shared' (matched by '**/*.md')"),
        ("docs/*/secret.md", "'docs/shared' (matched by 'docs/*/secret.md')"),
        ("docs/shared/secret.md", "'docs/shared' (matched by 'docs/shared/secret.md')"),
        ("etc/passwd", "'etc' (matched by 'etc/passwd')"),
        ("e*/pass*", "'etc' (matched by 'e*/pass*')"),
    ]:
        wf = search_workflow(docs, files="$input.paths")
        assert failure(engine, wf, paths=[files]) == (
            f"ExecutionError: step 'find': {shown} leads out of the root directory '{docs}' "
            "through a symbolic link; file_search reads only under its root"
        )


def test_symlinks_that_stay_inside_the_root_are_followed(
    make_engine: EngineFactory, docs: Path
) -> None:
    (docs / "faq.md").symlink_to(docs / "docs" / "accounts.md")
    (docs / "guides").symlink_to("docs", target_is_directory=True)
    (docs / "docs" / "loop").symlink_to("..", target_is_directory=True)  # a cycle
    wf = search_workflow(docs, files=("faq.md", "guides/shipping.md", "**/*.md"), max_results=9)
    found = hits(make_engine(), wf, "password refund shipping")
    # Every file once, named by where it really is.
    assert sorted({hit["file"] for hit in found}) == [
        "docs/accounts.md",
        "docs/refunds.md",
        "docs/shipping.md",
    ]


def test_a_configured_root_replaces_the_workflow_directory(
    make_engine: EngineFactory, docs: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "kb").mkdir(parents=True)
    (shared / "kb" / "policy.md").write_text("Passwords are rotated every 90 days.\n")
    configure_file_search(root=shared)
    found = hits(make_engine(), search_workflow(docs, files=("kb/*.md",)), "password")
    assert [hit["file"] for hit in found] == ["kb/policy.md"]
    # The workflow's own directory is no longer readable: it is outside the root.
    assert failure(make_engine(), search_workflow(docs, files=("../kb/notes.txt",))).endswith(
        f"'../kb/notes.txt' goes up with '..'; file_search reads only under the root directory "
        f"'{shared}'"
    )


def test_the_number_of_files_is_limited(make_engine: EngineFactory, docs: Path) -> None:
    configure_file_search(max_files=3)
    assert hits(make_engine(), search_workflow(docs), "refund")  # three files: fine
    wf = search_workflow(docs, files=("docs/*.md", "notes.txt"))
    assert failure(make_engine(), wf) == (
        "ExecutionError: step 'find': 'files' match more than 3 files (reached with "
        "'notes.txt'); narrow the paths and globs, or raise the limit with "
        "flowkit.ai.configure_file_search(max_files=...)"
    )


def test_the_size_of_a_file_is_limited(make_engine: EngineFactory, docs: Path) -> None:
    configure_file_search(max_file_bytes=len(SHIPPING))
    assert hits(make_engine(), search_workflow(docs, files=("docs/shipping.md",)), "ships")
    big = (docs / "docs" / "accounts.md").resolve()
    assert failure(make_engine(), search_workflow(docs)) == (
        f"ExecutionError: step 'find': '{big}' is {len(PASSWORDS)} bytes, over the limit of "
        f"{len(SHIPPING)} bytes per file; raise it with "
        "flowkit.ai.configure_file_search(max_file_bytes=...)"
    )


def test_configure_file_search_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(flowkit.ConfigError) as raised:
        configure_file_search(root=tmp_path / "nowhere")
    assert str(raised.value) == f"file_search: the root '{tmp_path / 'nowhere'}' is not a directory"
    with pytest.raises(flowkit.ConfigError) as raised:
        configure_file_search(max_files=0)
    assert str(raised.value) == "file_search: max_files must be a positive integer, got 0"
    with pytest.raises(flowkit.ConfigError) as raised:
        configure_file_search(max_file_bytes=True)
    assert str(raised.value) == "file_search: max_file_bytes must be a positive integer, got True"


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
