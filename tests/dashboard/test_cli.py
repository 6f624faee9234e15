"""``flowkit dashboard``: its help, password hashes, and a real server in another process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from flowkit.cli import main
from flowkit.dashboard import verify_password


def test_help_says_it_binds_this_machine_only() -> None:
    result = CliRunner().invoke(main, ["dashboard", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Binds 127.0.0.1 (this machine only) unless --host says otherwise" in text
    assert "--host TEXT Interface to listen on. The default serves this machine only" in text
    assert "[default: 127.0.0.1]" in text
    assert "Port to listen on. [default: 8484; 1<=x<=65535]" in text


def test_hash_password_prints_a_line_for_the_users_file() -> None:
    result = CliRunner().invoke(
        main, ["dashboard", "--hash-password", "alice"], input="s3cret\ns3cret\n"
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    name, _, hashed = line.partition(":")
    assert name == "alice"
    assert verify_password("s3cret", hashed)


def test_import_flowkit_loads_no_web_stack() -> None:
    code = (
        "import sys, flowkit, flowkit.cli; "
        "print(sorted({'starlette', 'uvicorn', 'jinja2', 'itsdangerous'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_serves_until_stopped(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "FLOWKIT_DASHBOARD_USERS": "alice:alice-pw"}
    command = [
        sys.executable,
        "-m",
        "flowkit",
        "dashboard",
        "--store",
        "memory://",
        "--port",
        str(port),
    ]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stderr is not None
            announced = ""
            for line in process.stderr:  # warnings may come first (memory:// is not durable)
                if line.startswith("flowkit dashboard on"):
                    announced = line.strip()
                    break
            assert announced == (
                f"flowkit dashboard on http://127.0.0.1:{port} (1 user(s)); Ctrl+C stops it"
            )
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/api/executions").status_code == 401
            listed = httpx.get(f"{base}/api/executions", auth=("alice", "alice-pw"))
            assert listed.json() == {"executions": [], "next": None}
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
    assert process.returncode == 0


def test_without_the_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    # Python skips a module that is None in sys.modules, as if it were not installed.
    code = (
        "import sys; sys.modules['starlette'] = None; "
        "from flowkit.cli import main; main(['dashboard', '--store', 'memory://'])"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 1
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("error: the dashboard needs the dashboard extra (")
    )
    assert "pip install 'flowkit-workflows[dashboard]'" in run.stderr
