"""Group commit: batches of what queued meanwhile, one outcome per item."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from flowkit.backends import batching
from flowkit.backends.batching import GroupCommit


class Recorder:
    """A batch writer that keeps every batch, can hold the first one, and fails on request."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.writing = threading.Event()
        self.fail_batch: int | None = None

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.writing.set()
        self.release.wait()
        if self.fail_batch == len(self.batches):
            raise OSError("the connection dropped")
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


def wait_queued(commit: GroupCommit[int, int], count: int) -> None:
    # The queue is private; the test reads it to know the followers have arrived.
    deadline = time.monotonic() + 10
    while len(commit._queue) < count:
        assert time.monotonic() < deadline, "followers did not queue up"
        time.sleep(0.001)


def behind_a_held_batch(
    pool: ThreadPoolExecutor, commit: GroupCommit[int, int], writer: Recorder, items: Sequence[int]
) -> list[Future[int]]:
    """Write 0 in a batch the writer holds while ``items`` queue up behind it, then let
    it go: the futures of ``items`` (0's result is checked here)."""
    first = pool.submit(commit, 0)
    assert writer.writing.wait(10)
    queued = [pool.submit(commit, i) for i in items]
    wait_queued(commit, len(items))
    writer.release.set()
    assert first.result() == 0
    return queued


def test_a_lone_caller_writes_at_once() -> None:
    writer = Recorder()
    commit = GroupCommit(writer)
    assert commit(2) == 20
    assert commit(4) == 40
    assert writer.batches == [[2], [4]]


def test_callers_arriving_during_a_write_share_the_next_batch() -> None:
    writer = Recorder(hold_first=True)
    commit = GroupCommit(writer)
    with ThreadPoolExecutor(8) as pool:
        rest = behind_a_held_batch(pool, commit, writer, (2, 4, 6, 8, 10, 12))
        assert [f.result() for f in rest] == [20, 40, 60, 80, 100, 120]
    assert writer.batches == [[0], [2, 4, 6, 8, 10, 12]]


def test_each_item_keeps_its_own_outcome() -> None:
    writer = Recorder(hold_first=True)
    commit = GroupCommit(writer)
    with ThreadPoolExecutor(4) as pool:
        odd, even = behind_a_held_batch(pool, commit, writer, (3, 4))
        with pytest.raises(ValueError, match="odd 3"):
            odd.result()
        assert even.result() == 40
    assert writer.batches == [[0], [3, 4]]


def test_a_failed_batch_fails_its_items_and_the_next_batch_goes_on() -> None:
    writer = Recorder(hold_first=True)
    writer.fail_batch = 2
    commit = GroupCommit(writer)
    with ThreadPoolExecutor(4) as pool:
        failing = behind_a_held_batch(pool, commit, writer, (2, 4))
        for future in failing:
            with pytest.raises(OSError, match="connection dropped"):
                future.result()
    assert commit(6) == 60
    assert writer.batches == [[0], [2, 4], [6]]


def test_batches_hold_at_most_max_batch_items() -> None:
    writer = Recorder(hold_first=True)
    commit = GroupCommit(writer, max_batch=2)
    with ThreadPoolExecutor(8) as pool:
        rest = behind_a_held_batch(pool, commit, writer, (2, 4, 6, 8, 10))
        assert sorted(f.result() for f in rest) == [20, 40, 60, 80, 100]
    assert [len(batch) for batch in writer.batches] == [1, 2, 2, 1]
    assert sorted(i for batch in writer.batches for i in batch) == [0, 2, 4, 6, 8, 10]


def _shared_batch(commit: GroupCommit[int, int], writer: Recorder) -> None:
    """Write [0] while 2 and 4 queue up: the next batch, [2, 4], holds one other."""
    with ThreadPoolExecutor(4) as pool:
        rest = behind_a_held_batch(pool, commit, writer, (2, 4))
        assert [f.result() for f in rest] == [20, 40]
    assert writer.batches == [[0], [2, 4]]


def test_with_gather_callers_released_by_one_batch_share_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = Recorder(hold_first=True)
    commit = GroupCommit(writer, gather=True)
    _shared_batch(commit, writer)
    # The first caller after a batch that held one other waits for one other.
    monkeypatch.setattr(batching, "MAX_GATHER", 60.0)
    commit._took = 30.0  # private: the wait is bounded by the last write's time
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(commit, 6)
        deadline = time.monotonic() + 10
        while commit._full is None:  # private: the leader is gathering
            assert time.monotonic() < deadline, "the first caller did not gather"
            time.sleep(0.001)
        follower = pool.submit(commit, 8)
        assert (leader.result(timeout=10), follower.result(timeout=10)) == (60, 80)
    assert writer.batches[2:] == [[6, 8]]


def test_with_gather_a_caller_waits_no_longer_than_twice_the_last_write() -> None:
    writer = Recorder(hold_first=True)
    commit = GroupCommit(writer, gather=True)
    _shared_batch(commit, writer)
    commit._took = 0.001  # nobody else comes: the caller writes alone after 2 ms
    assert commit(6) == 60
    assert commit(8) == 80  # it wrote alone, so this one does not wait
    assert writer.batches[2:] == [[6], [8]]


def test_with_gather_a_lone_caller_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = Recorder()
    commit = GroupCommit(writer, gather=True)
    monkeypatch.setattr(batching, "MAX_GATHER", 60.0)
    commit._took = 30.0  # a wait would last 60 s and time the test out
    started = time.monotonic()
    assert [commit(i) for i in (2, 4, 6)] == [20, 40, 60]
    assert time.monotonic() - started < 30
    assert writer.batches == [[2], [4], [6]]


@pytest.mark.parametrize("gather", [False, True])
def test_many_threads_every_item_written_once_with_its_own_result(gather: bool) -> None:
    writer = Recorder()
    commit = GroupCommit(writer, gather=gather)
    items = list(range(0, 4000, 2))
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(commit, items))
    assert results == [i * 10 for i in items]
    assert sorted(i for batch in writer.batches for i in batch) == items


def test_a_writer_with_the_wrong_number_of_outcomes_fails_the_batch() -> None:
    commit: GroupCommit[int, int] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        commit(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        GroupCommit(Recorder(), max_batch=0)
