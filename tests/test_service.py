"""Every command: --help, and one readable line with a non-zero exit when it cannot start."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

COMMANDS = ["myyoutube.master", "myyoutube.datanode", "myyoutube.web", "myyoutube.cluster"]


def run(module: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    entry = f"from {module}{'' if module.endswith('cluster') else '.main'} import main; main()"
    return subprocess.run(
        [sys.executable, "-c", entry, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("module", COMMANDS)
def test_help_describes_the_command(module):
    """--help exits 0 and lists the flags operators depend on."""
    result = run(module, "--help")
    assert result.returncode == 0
    assert "--host" in result.stdout


@pytest.mark.parametrize(
    "module, args",
    [
        ("myyoutube.master", ["--port", "http"]),
        ("myyoutube.datanode", ["--master", "nowhere", "--data-dir", "x"]),
        ("myyoutube.web", ["--master", "127.0.0.1:1", "--max-upload-bytes", "-5"]),
        ("myyoutube.cluster", ["--datanodes", "zero"]),
    ],
)
def test_bad_flags_exit_non_zero_with_a_readable_line(module, args):
    """A malformed flag value is named in an error line, exit status 2, no traceback."""
    result = run(module, *args)
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_busy_port_is_one_line_exit_1(tmp_path):
    """A master asked to listen on a taken port says so in one line and exits 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("myyoutube.master", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("myyoutube-master: error: cannot listen")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "module, extra",
    [
        ("myyoutube.datanode", ["--data-dir", "DIR", "--port", "0"]),
        ("myyoutube.web", ["--port", "0"]),
    ],
)
def test_unreachable_master_is_one_line_exit_1(module, extra, tmp_path):
    """A datanode or web front end whose master does not answer exits 1 naming the master."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        args = [a.replace("DIR", str(tmp_path)) for a in extra]
        result = run(module, "--master", f"127.0.0.1:{port}", *args)
    assert result.returncode == 1
    assert f"cannot reach the master at 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_public_bind_without_certificates_is_refused(tmp_path):
    """Listening beyond loopback without --cert-dir is refused with the reason."""
    result = run("myyoutube.master", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "without --cert-dir" in result.stderr
