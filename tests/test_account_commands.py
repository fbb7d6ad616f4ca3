"""`myyoutube login|logout|user ...` (account_commands.py), run as real processes against a
real cluster: what an operator types to sign in and to manage accounts."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness import ADMIN_PASSWORD, run_myyoutube


def myyoutube(cluster, config: Path, *args: str) -> subprocess.CompletedProcess:
    """The command with its own config folder (where `login` keeps its token) and no
    token from the environment, so only what `login` saved signs requests in."""
    return run_myyoutube(cluster, *args, env={"XDG_CONFIG_HOME": str(config), "MYYOUTUBE_TOKEN": ""})


def password_file(folder: Path, password: str) -> str:
    path = folder / f"password-{uuid.uuid4().hex[:8]}"
    path.write_text(password + "\n")
    return str(path)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("myyoutube: error: "), result.stderr
    return lines[0]


def test_an_admin_signs_in_manages_an_account_and_signs_out(cluster, tmp_path):
    """login saves a token only its owner can read and later commands use it; user add,
    list, set, passwd and remove change what the server holds (the old password stops working,
    a removed account cannot sign in); login works over a saved token that went stale, and
    logout forgets one; logout revokes a live token, so commands after it are refused
    with one readable line that names the command signing in again."""
    admin = tmp_path / "admin-config"
    signed_in = myyoutube(
        cluster,
        admin,
        "login",
        "--username",
        "admin",
        "--password-file",
        password_file(tmp_path, ADMIN_PASSWORD),
    )
    assert signed_in.returncode == 0, signed_in.stderr
    assert "signed in as admin" in signed_in.stdout
    token_file = admin / "myyoutube" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    name = f"alice-{uuid.uuid4().hex[:8]}"
    first, second = password_file(tmp_path, "first password 1"), password_file(tmp_path, "second password 2")
    added = myyoutube(cluster, admin, "user", "add", name, "--role", "uploader", "--password-file", first)
    assert added.returncode == 0 and f"added {name} (uploader)" in added.stdout, added.stderr
    listed = json.loads(myyoutube(cluster, admin, "user", "list", "--json").stdout)
    assert {"name": name, "role": "uploader"}.items() <= next(
        user for user in listed["users"] if user["name"] == name
    ).items()
    table = myyoutube(cluster, admin, "user", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "USED", "QUOTA", "SESSIONS"]
    assert any(line.split()[:2] == [name, "uploader"] for line in table[1:])
    regraded = myyoutube(cluster, admin, "user", "set", name, "--role", "viewer", "--quota-bytes", "5MB")
    assert regraded.returncode == 0, regraded.stderr
    assert f"{name} is now viewer, with a quota of 4.8 MiB" in regraded.stdout
    # A viewer cannot upload: its quota column says so rather than show room it cannot use.
    table = myyoutube(cluster, admin, "user", "list").stdout.splitlines()
    fields = next(line.split() for line in table[1:] if line.split()[0] == name)
    assert fields[1] == "viewer" and fields[-2] == "-"  # QUOTA, before SESSIONS
    assert "say what to change" in one_error_line(myyoutube(cluster, admin, "user", "set", name))
    regraded = myyoutube(
        cluster, admin, "user", "set", name, "--role", "uploader", "--default-quota", "--json"
    )
    assert json.loads(regraded.stdout)["user"]["role"] == "uploader", regraded.stderr
    # One account without a limit while the master's default holds for the others.
    unlimited = myyoutube(cluster, admin, "user", "set", name, "--quota-bytes", "unlimited")
    assert f"{name} is now uploader, with no quota" in unlimited.stdout, unlimited.stderr
    fields = next(
        line.split()
        for line in myyoutube(cluster, admin, "user", "list").stdout.splitlines()
        if line.split()[0] == name
    )
    assert fields[-2] == "unlimited"

    alice = tmp_path / "alice-config"
    assert myyoutube(cluster, alice, "login", "--username", name, "--password-file", first).returncode == 0
    changed = myyoutube(cluster, admin, "user", "passwd", name, "--password-file", second)
    assert changed.returncode == 0 and "sessions ended" in changed.stdout, changed.stderr
    one_error_line(myyoutube(cluster, alice, "login", "--username", name, "--password-file", first))
    assert myyoutube(cluster, alice, "login", "--username", name, "--password-file", second).returncode == 0

    removed = myyoutube(cluster, admin, "user", "remove", name)
    assert removed.returncode == 0 and f"removed {name}" in removed.stdout, removed.stderr
    one_error_line(myyoutube(cluster, alice, "login", "--username", name, "--password-file", second))
    listed = json.loads(myyoutube(cluster, admin, "user", "list", "--json").stdout)
    assert name not in {user["name"] for user in listed["users"]}
    # alice's saved token died with her account: logging out still forgets it.
    stale = myyoutube(cluster, alice, "logout")
    assert stale.returncode == 0 and "no longer valid" in stale.stdout, stale.stderr
    assert not (alice / "myyoutube" / "token").exists()

    signed_out = myyoutube(cluster, admin, "logout")
    assert signed_out.returncode == 0 and "signed out" in signed_out.stdout, signed_out.stderr
    assert not token_file.exists()
    assert one_error_line(myyoutube(cluster, admin, "user", "list")).endswith("(run `myyoutube login`)")


def test_logging_out_without_a_token_says_so(cluster, tmp_path):
    """`myyoutube logout` with no token saved said "signed out" (while --json said
    `"signed_out": false`), as if a session had ended; it now says there was none."""
    result = myyoutube(cluster, tmp_path / "never-signed-in", "logout")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"not signed in at {cluster.url}\n", "")


def test_changing_ones_own_password_takes_the_current_one(cluster, tmp_path):
    """`user passwd` for the account one is signed in as asks for the current password
    (at a terminal, first of all); without a terminal or --current-password-file it says
    which flag to give, a wrong one
    is one readable line and changes nothing; the right one changes the password, and the
    saved token, which ended with every other session, is forgotten."""
    admin = tmp_path / "admin-config"
    admin_file = password_file(tmp_path, ADMIN_PASSWORD)
    assert (
        myyoutube(cluster, admin, "login", "--username", "admin", "--password-file", admin_file).returncode
        == 0
    )
    name, mine = f"erin-{uuid.uuid4().hex[:8]}", tmp_path / "erin-config"
    first, second = password_file(tmp_path, "first password 1"), password_file(tmp_path, "second password 2")
    assert (
        myyoutube(
            cluster, admin, "user", "add", name, "--role", "viewer", "--password-file", first
        ).returncode
        == 0
    )
    assert myyoutube(cluster, mine, "login", "--username", name, "--password-file", first).returncode == 0
    passwd = ("user", "passwd", name, "--password-file", second)
    assert "use --current-password-file FILE" in one_error_line(myyoutube(cluster, mine, *passwd))
    wrong = password_file(tmp_path, "not my password")
    refused = one_error_line(myyoutube(cluster, mine, *passwd, "--current-password-file", wrong))
    assert "current password" in refused
    status, shown = typed_at_a_terminal(cluster, mine, ("user", "passwd", name), b"\x04")
    assert status == 1 and "Your current password: " in shown and "no password given" in shown, shown
    changed = myyoutube(cluster, mine, *passwd, "--current-password-file", first)
    assert changed.returncode == 0 and "sign in again" in changed.stdout, changed.stderr
    assert not (mine / "myyoutube" / "token").exists()
    assert myyoutube(cluster, mine, "login", "--username", name, "--password-file", second).returncode == 0


def test_an_act_on_an_admin_account_asks_for_ones_own_password(fresh_cluster, tmp_path):
    """Adding an admin, and `set`, `passwd` or `remove` of one, take the asker's own
    password, as the server requires: at a terminal the command prompts for it (after the
    new account's password); without one it says which flag gives it; a wrong one is one
    readable line; each time nothing changes. With --current-password-file the act is
    done. `set` on an account that is no admin asks for nothing."""
    cluster = fresh_cluster(datanodes=1)
    admin, own = tmp_path / "admin-config", password_file(tmp_path, ADMIN_PASSWORD)
    assert myyoutube(cluster, admin, "login", "--username", "admin", "--password-file", own).returncode == 0
    new, wrong = password_file(tmp_path, "boss password 1"), password_file(tmp_path, "not my password")
    add = ("user", "add", "boss", "--role", "admin", "--password-file", new)

    def roles() -> dict[str, str]:
        listed = json.loads(myyoutube(cluster, admin, "user", "list", "--json").stdout)["users"]
        return {user["name"]: user["role"] for user in listed}

    assert "use --current-password-file FILE" in one_error_line(myyoutube(cluster, admin, *add))
    assert "wrong" in one_error_line(myyoutube(cluster, admin, *add, "--current-password-file", wrong))
    assert "boss" not in roles()
    added = myyoutube(cluster, admin, *add, "--current-password-file", own)
    assert added.returncode == 0 and "added boss (admin)" in added.stdout, added.stderr
    status, shown = typed_at_a_terminal(cluster, admin, ("user", "remove", "boss"), b"\x04")
    assert status == 1 and "Your own password (acting on the admin account boss): " in shown, shown
    for act in (
        ("user", "set", "boss", "--role", "viewer"),
        ("user", "passwd", "boss", "--password-file", new),
        ("user", "remove", "boss"),
    ):
        assert "use --current-password-file FILE" in one_error_line(myyoutube(cluster, admin, *act)), act
    assert roles()["boss"] == "admin"
    demoted = myyoutube(
        cluster, admin, "user", "set", "boss", "--role", "uploader", "--current-password-file", own
    )
    assert demoted.returncode == 0 and "boss is now uploader" in demoted.stdout, demoted.stderr
    assert myyoutube(cluster, admin, "user", "set", "boss", "--quota-bytes", "1000").returncode == 0
    assert myyoutube(cluster, admin, "user", "remove", "boss").returncode == 0
    assert "boss" not in roles()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("login", "--username", "admin"), "use --password-file FILE"),
        (("login",), "give the account with --username NAME"),
        (("user", "add", "bob", "--role", "viewer"), "use --password-file FILE"),
    ],
)
def test_a_password_is_never_waited_for_without_a_terminal(cluster, tmp_path, args, says):
    """Without a terminal to type at (a script, a cron job) a command that needs a
    password or a name fails at once with a line that says what to give instead."""
    assert says in one_error_line(myyoutube(cluster, tmp_path, *args))


def test_an_empty_password_file_is_named_not_taken_for_a_wrong_password(cluster, tmp_path):
    """An empty --password-file was sent as the password, and the server's "Wrong username
    or password" sent the operator looking for a typo; the file is now named as empty."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    line = one_error_line(
        myyoutube(cluster, tmp_path, "login", "--username", "admin", "--password-file", str(empty))
    )
    assert line == f"myyoutube: error: the password file {empty} is empty; put the password on its first line"


def test_a_wrong_password_is_refused_and_nothing_is_saved(cluster, tmp_path):
    """A failed login exits 1 with one line and leaves no token file behind."""
    failed = myyoutube(
        cluster, tmp_path, "login", "--username", "admin", "--password-file", password_file(tmp_path, "wrong")
    )
    assert "myyoutube login" not in one_error_line(failed)  # it is the login that failed
    assert not (tmp_path / "myyoutube" / "token").exists()


def test_a_password_file_that_cannot_be_read_is_one_line_and_nothing_is_saved(cluster, tmp_path):
    """--password-file naming a binary file (a video, a key) or no file at all fails with one
    line that names the file (a binary file used to end in a UnicodeDecodeError traceback),
    and no token is saved."""
    binary = tmp_path / "clip.mp4"
    binary.write_bytes(b"\x00\x00\x00\x18ftypmp42\xe8\xff\xfe")
    cases = ((binary, "is not a text file"), (tmp_path / "missing", "No such file or directory"))
    for path, says in cases:
        line = one_error_line(
            myyoutube(cluster, tmp_path, "login", "--username", "admin", "--password-file", str(path))
        )
        assert str(path) in line and says in line, line
    assert not (tmp_path / "myyoutube" / "token").exists()


def test_a_token_that_cannot_be_saved_is_one_line_naming_the_file(cluster, tmp_path):
    """login with a config folder it cannot write (here under a plain file) says where the
    token could not go and why (it used to be "[Errno 20] Not a directory: ...")."""
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    line = one_error_line(
        myyoutube(
            cluster,
            plain / "config",
            "login",
            "--username",
            "admin",
            "--password-file",
            password_file(tmp_path, ADMIN_PASSWORD),
        )
    )
    assert line == (
        f"myyoutube: error: signed in, but cannot save the token in {plain}/config/myyoutube/token: "
        "Not a directory ($MYYOUTUBE_TOKEN or $XDG_CONFIG_HOME can point elsewhere)"
    )


def typed_at_a_terminal(cluster, config: Path, args: tuple[str, ...], keys: bytes) -> tuple[int | None, str]:
    """Run the command on a pseudo-terminal, type `keys` once it prompts ("...: "), and
    return its exit status (None if it still runs 10 s later; it is then killed) and all
    it wrote to the terminal."""
    env = {key: value for key, value in os.environ.items() if key != "MYYOUTUBE_TOKEN"}
    env["XDG_CONFIG_HOME"] = str(config)
    command = [sys.executable, "-m", "myyoutube.commandline", *args, "--url", cluster.url]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes the command, the pty its terminal
        os.execve(sys.executable, command, env)
    shown = b""
    deadline = time.monotonic() + 30
    while b": " not in shown and time.monotonic() < deadline:
        if select.select([terminal], [], [], 0.1)[0]:
            shown += os.read(terminal, 4096)
    # As a person types: a while after the prompt. (Python itself misses a Ctrl-C that
    # lands between writing a prompt and starting to read, as `python -c "input()"` shows.)
    time.sleep(0.5)
    os.write(terminal, keys)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if select.select([terminal], [], [], 0.1)[0]:
            try:
                shown += os.read(terminal, 4096)
            except OSError:  # the terminal closed as the command exited
                pass
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = None
    os.close(terminal)
    return (None if status is None else os.waitstatus_to_exitcode(status)), shown.decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "keys", "exit_status", "says"),
    [
        (("login",), b"\x03", 130, "Username: "),
        (("login", "--username", "admin"), b"\x03", 130, "Password: "),
        (("user", "add", "carol", "--role", "viewer"), b"\x03", 130, "Password for carol: "),
        (("login",), b"\x04", 1, "myyoutube: error: no username given"),
        (("user", "passwd", "carol"), b"\x04", 1, "myyoutube: error: no password given"),
    ],
)
def test_ctrl_c_or_ctrl_d_at_a_prompt_ends_the_command(cluster, tmp_path, args, keys, exit_status, says):
    """Ctrl-C at the Username: or a Password: prompt ends the command at once (130), and
    Ctrl-D (end of input) is one line and exit 1. Before, asyncio turned Ctrl-C into a
    cancellation the blocked prompt never saw, so the command went on waiting, and Ctrl-D
    at Username: ended in an EOFError traceback."""
    status, shown = typed_at_a_terminal(cluster, tmp_path, args, keys)
    assert status == exit_status, shown
    assert says in shown and "Traceback" not in shown
    assert not (tmp_path / "myyoutube" / "token").exists()


@pytest.mark.parametrize("quota", ["99999999999999999999999", "-5", "1e9", "9000PiB"])
def test_a_quota_the_index_cannot_hold_is_a_usage_error(cluster, tmp_path, quota):
    """`user add --quota-bytes` past what SQLite's integers hold (or not a whole number) is
    refused before anything is sent: 10**23 bytes used to reach the master, which dropped
    its link to the web over the overflow, and the user read "The storage cluster is not
    answering; try again shortly"."""
    config = tmp_path / "config"
    assert (
        myyoutube(
            cluster,
            config,
            "login",
            "--username",
            "admin",
            "--password-file",
            password_file(tmp_path, ADMIN_PASSWORD),
        ).returncode
        == 0
    )
    name = f"dave-{uuid.uuid4().hex[:8]}"
    args = ("user", "add", name, "--role", "viewer", "--password-file", password_file(tmp_path, "a password"))
    refused = myyoutube(cluster, config, *args, "--quota-bytes", quota)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1].startswith("myyoutube user add: error: argument --quota-bytes: ")
    listed = json.loads(myyoutube(cluster, config, "user", "list", "--json").stdout)["users"]
    assert name not in {user["name"] for user in listed}
