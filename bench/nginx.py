"""A throwaway nginx serving local files on 127.0.0.1: the reference the data-path benchmarks
compare the cluster against.

Theory of operation
-------------------
nginx with `sendfile` is about as fast as a static file can leave this machine, so it marks
the ceiling for "the same bytes, over the same loopback, to the same client". `Nginx` makes
a private temporary directory holding everything nginx touches: `www/` (the document root,
with a hard link to each payload file, or a copy if the file is on another filesystem),
`nginx.conf`, the pid file, the error log and every temp path. It picks a free ephemeral
port on 127.0.0.1, starts `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log` as a child
process with `daemon off; master_process on; worker_processes 2;` (so the child's pid is
the master's), and waits until the port accepts a connection. `stop()` sends SIGTERM to
that pid only (never by name), waits, SIGKILLs the master and the workers it had (their
pids read from /proc) if they linger, then deletes the directory.

nginx itself comes from Debian's `nginx-light` package. If no `nginx` binary is found,
`ensure_nginx()` installs it with apt-get (an `apt-get update` first if the install fails):
the benchmarks need it, the project and its tests never do. On a machine with an init
system the package's post-install script may also start a system nginx on port 80; this
one is independent of it.

Usage as a script, to check the helper alone: `python bench/nginx.py FILE` serves FILE for a
few seconds and fetches its first bytes back.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# Where Debian puts the binary; root's PATH has /usr/sbin, other users' may not.
DEBIAN_NGINX_PATH = "/usr/sbin/nginx"
# nginx binds and forks its workers in milliseconds; allow for a loaded machine.
STARTUP_TIMEOUT_S = 10.0
# SIGTERM is nginx's fast shutdown (workers exit at once); more than this means it hangs.
STOP_TIMEOUT_S = 10.0
# A port picked free may be taken by someone else before nginx binds it: try again.
BIND_ATTEMPTS = 3
# How often to knock on the port while nginx starts.
POLL_INTERVAL_S = 0.05
# apt-get on a slow mirror; the package is ~1 MB.
APT_TIMEOUT_S = 600.0
# Requests per keep-alive connection before nginx closes it (default 1000): the benchmark's
# connections should stay open for the whole run, as our own server's do.
KEEPALIVE_REQUESTS = 10_000_000

# Temp-path directives; a module compiled out (see `nginx -V`) must not appear in the config.
_TEMP_PATHS = {
    "client_body_temp_path": None,
    "proxy_temp_path": "http_proxy",
    "fastcgi_temp_path": "http_fastcgi",
    "uwsgi_temp_path": "http_uwsgi",
    "scgi_temp_path": "http_scgi",
}

_CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests {keepalive_requests};
{temp_paths}
    types {{
        video/mp4 mp4;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
    }}
}}
"""


def ensure_nginx() -> str:
    """The nginx binary's path, installing Debian's nginx-light first if there is none."""
    found = shutil.which("nginx") or (DEBIAN_NGINX_PATH if os.access(DEBIAN_NGINX_PATH, os.X_OK) else None)
    if found:
        return found
    print("nginx not found: apt-get install -y -qq nginx-light (for the benchmark only) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "nginx-light"]
    if subprocess.run(install, env=env, timeout=APT_TIMEOUT_S).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=APT_TIMEOUT_S, check=True)
        subprocess.run(install, env=env, timeout=APT_TIMEOUT_S, check=True)
    found = shutil.which("nginx") or DEBIAN_NGINX_PATH
    if not os.access(found, os.X_OK):
        raise RuntimeError("nginx-light installed but no nginx binary found")
    return found


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _temp_path_lines(binary: str, directory: Path) -> str:
    built = subprocess.run([binary, "-V"], capture_output=True, text=True, check=True).stderr
    lines = []
    for directive, module in _TEMP_PATHS.items():
        if module is None or f"--without-{module}_module" not in built:
            lines.append(f"    {directive} {directory}/temp/{directive.removesuffix('_temp_path')};")
    return "\n".join(lines)


def _user_line() -> str:
    """As root, nginx's workers switch to an unprivileged user: nobody, in its own group
    (nginx's compiled-in default group `nobody` does not exist on Debian)."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"


def _kill_worker(pid: int) -> None:
    """SIGKILL an orphaned worker of ours, checking the pid still names an nginx worker."""
    try:
        if b"nginx: worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


class Nginx:
    """nginx serving `files` as /NAME on 127.0.0.1:<ephemeral port>, as a context manager."""

    def __init__(self, files: list[Path], workers: int = 2) -> None:
        self.files, self.workers = files, workers
        self.binary = ensure_nginx()
        self.dir = Path(tempfile.mkdtemp(prefix="myyoutube-nginx-"))
        self.process: subprocess.Popen | None = None
        self.port = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _prepare(self) -> None:
        """The document root with the payloads, readable by the unprivileged workers."""
        www = self.dir / "www"
        (self.dir / "temp").mkdir(parents=True)
        www.mkdir()
        for directory in (self.dir, www):
            directory.chmod(0o755)
        for path in self.files:
            try:
                os.link(path, www / path.name)
            except OSError:
                shutil.copyfile(path, www / path.name)
            (www / path.name).chmod(0o644)

    def _launch(self) -> bool:
        """Start nginx on a fresh port; True once it answers, False if the port was taken."""
        self.port = free_port()
        config = _CONFIG.format(
            workers=self.workers,
            dir=self.dir,
            user=_user_line(),
            keepalive_requests=KEEPALIVE_REQUESTS,
            temp_paths=_temp_path_lines(self.binary, self.dir),
            port=self.port,
        )
        (self.dir / "nginx.conf").write_text(config)
        # -p: prefix for relative paths; -e: error log from the start (before the config is read).
        command = [self.binary, "-p", f"{self.dir}/", "-c", f"{self.dir}/nginx.conf"]
        command += ["-e", f"{self.dir}/error.log"]
        with open(self.dir / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self._log_tail():
                    return False
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self._log_tail()}")
            # The master listens before it forks the workers: wait for both.
            if self._answers() and self._workers_up():
                return True
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise RuntimeError(f"nginx did not answer on port {self.port} within {STARTUP_TIMEOUT_S:g} s")

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _workers_up(self) -> bool:
        try:
            return len(self.pids()) > self.workers
        except OSError:  # the master just exited; the next poll() says why
            return False

    def _log_tail(self) -> str:
        text = ""
        for log in ("error.log", "stderr.log"):
            if (self.dir / log).exists():
                text += (self.dir / log).read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-3:])

    def start(self) -> Nginx:
        try:
            self._prepare()
            for _ in range(BIND_ATTEMPTS):
                if self._launch():
                    return self
            raise RuntimeError(f"no free port after {BIND_ATTEMPTS} attempts: {self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def pids(self) -> dict[str, int]:
        """Display name -> pid of the master and its workers (read from /proc)."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return {"nginx master": master} | {f"nginx worker {n}": int(pid) for n, pid in enumerate(children)}

    def stop(self) -> None:
        """SIGTERM to our master's pid; SIGKILL to it and its workers if it lingers."""
        if self.process is not None and self.process.poll() is None:
            try:
                workers = list(self.pids().values())[1:]
            except OSError:  # the master exited meanwhile
                workers = []
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                for pid in workers:
                    _kill_worker(pid)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a file to serve and fetch back")
    args = parser.parse_args()
    with Nginx([args.file]) as nginx:
        print(f"nginx (pids {nginx.pids()}) serves {nginx.url(args.file.name)}")
        request = urllib.request.Request(nginx.url(args.file.name), headers={"Range": "bytes=0-15"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        with opener.open(request, timeout=STOP_TIMEOUT_S) as response:
            body = response.read()
        with open(args.file, "rb") as file:
            same = body == file.read(len(body))
        print(f"Range bytes=0-15 -> {response.status}, {len(body)} bytes, match: {same}")


if __name__ == "__main__":
    main()
