"""Start and stop the test servers as real processes (no fixed sleeps: ports are polled)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
DEMO = HERE / "demo_server.py"
EXPENSES = HERE / "expenses.yml"


def flowkit_command() -> str:
    """The ``flowkit`` console script of this environment."""
    found = Path(sys.executable).parent / "flowkit"
    if found.exists():
        return str(found)
    which = shutil.which("flowkit")
    assert which, "the flowkit console script is not installed"
    return which


def free_port() -> int:
    """A loopback port nothing listens on (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    """Poll until something accepts connections on ``port``; fail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited with {process.returncode} before listening:\n{log.read_text()}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)  # a polling interval, not a fixed wait
    raise AssertionError(f"nothing listens on port {port} after {timeout}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process and reap it (kill it if it does not stop)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def listening(
    command: Sequence[str], port: int, log: Path, *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (a server that listens on ``port``) for the duration of the block."""
    with log.open("wb") as errors:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        stop(process)


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` has exited (and been reaped) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False
