"""`myyoutube login|logout|user ...`: signing in and managing accounts from the command line.

Theory of operation
-------------------
`login` asks the front end for an API token (POST /api/login) and saves it; every later
command sends it (webclient.py), and `logout` revokes it. `user add|list|remove|passwd`
manage accounts through /api/users, as an admin; `user passwd` also changes one's own
password, which takes the current one (--current-password-file, or a prompt when the
saved token signs in that account) and ends every session of the account, the saved
token's too. An act on an admin account (adding one, `set` or `remove` of one, another
admin's `passwd`) takes the asker's own password as well, as the server requires: the
command asks the server for the account's role first and prompts only when it is
needed (or reads --current-password-file). Passwords are read from a file
(--password-file, first line) or typed at a prompt without echo, never taken as an
argument, where `ps` and shell histories would show them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import unicodedata
from pathlib import Path

from myyoutube import webclient
from myyoutube.formatting import BadSize
from myyoutube.permissions import ADMIN, MAX_QUOTA_BYTES, VIEWER, parse_quota
from myyoutube.terminal import EXIT_OK, report, say_json, size_text, table
from myyoutube.webclient import Api, ToolError, Unauthorized, video_path


def _password(args: argparse.Namespace, prompt: str, confirm: bool = False) -> str:
    """The password from --password-file (its first line), else typed without echo."""
    if args.password_file is not None:
        return _password_file(args.password_file)
    return _typed_password(prompt, "--password-file", confirm)


def _password_file(path: Path) -> str:
    """A password file's first line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ToolError(f"cannot read the password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ToolError(f"{path} is not a text file; is it the password file?") from None
    if not lines or not lines[0]:
        # The server would say "Wrong username or password", which sends one looking
        # for a typo in the password rather than at the file.
        raise ToolError(f"the password file {path} is empty; put the password on its first line")
    return lines[0]


def _typed_password(prompt: str, flag: str, confirm: bool = False) -> str:
    """A password typed without echo at `prompt` (twice if `confirm`); without a terminal,
    a ToolError naming the `flag` that gives it from a file instead."""
    if not sys.stdin.isatty():
        raise ToolError(f"no terminal to type a password at; use {flag} FILE")
    try:
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != password:
            raise ToolError("the two passwords differ")
    except EOFError:  # Ctrl-D at the prompt
        raise ToolError("no password given") from None
    return password


# Prompts are answered before the event loop starts (commandline.main calls `ask`): in
# it, asyncio.run turns Ctrl-C into a cancellation that a blocked input() or getpass()
# never sees, so the command would wait on at the prompt.


# Asked before an act on an admin account (permissions.takes_own_password says why).
CONFIRM_PROMPT = "Your own password (acting on the admin account {name}): "


def ask_login(args: argparse.Namespace) -> None:
    """The account and its password, from the flags or typed."""
    if args.username is None:
        if not sys.stdin.isatty():
            raise ToolError("give the account with --username NAME")
        try:
            args.username = input("Username: ")
        except EOFError:  # Ctrl-D at the prompt
            raise ToolError("no username given") from None
    args.password = _password(args, "Password: ")


def ask_passwd(args: argparse.Namespace) -> None:
    """For `user passwd NAME`: when the saved token signs in NAME, the current password
    first (from --current-password-file, else typed), then the new one (from
    --password-file, else typed twice). An admin setting another admin's gives its own
    password too (after the new one); any other account's needs none."""
    args.own = _signed_in_as(args) == args.name
    args.current_password = ""
    if args.own:
        args.current_password = _own_password(args, "Your current password: ")
    args.password = _password(args, f"New password for {args.name}: ", confirm=True)
    if not args.own and _role_of(args, args.name) == ADMIN:
        args.current_password = _confirmation(args)


def ask_own_password_for_admins(args: argparse.Namespace) -> None:
    """For `user set` and `user remove`: the asker's own password when NAME is an admin
    account or is being made one (the server refuses the act without it)."""
    args.current_password = ""
    if getattr(args, "role", None) == ADMIN or _role_of(args, args.name) == ADMIN:
        args.current_password = _confirmation(args)


def _confirmation(args: argparse.Namespace) -> str:
    """The asker's own password, for an act on the admin account `args.name`."""
    return _own_password(args, CONFIRM_PROMPT.format(name=args.name))


def _own_password(args: argparse.Namespace, prompt: str) -> str:
    """The asker's own password: from --current-password-file, else typed at `prompt`."""
    if args.current_password_file is not None:
        return _password_file(args.current_password_file)
    return _typed_password(prompt, "--current-password-file")


def _role_of(args: argparse.Namespace, name: str) -> str | None:
    """The role of the account `name` as the server lists it; None when there is no such
    account, or no saved token, or the asker may not list accounts (the act itself then
    says why). Asked before the command's own event loop, as the prompts are."""
    token = webclient.saved_token(args.url)
    if not token:
        return None
    wanted = unicodedata.normalize("NFKC", name).strip()  # as the server stores names

    async def role() -> str | None:
        async with webclient.connect(args.url, token) as api:
            accounts = await api.records("/api/users", "users")
        return next((account.get("role") for account in accounts if account.get("name") == wanted), None)

    try:
        return asyncio.run(role())
    except ToolError:
        return None


def _signed_in_as(args: argparse.Namespace) -> str | None:
    """The account the saved token signs in (GET /api/me), None without one. Asked before
    the command's own event loop, as the prompts that depend on it must be."""
    token = webclient.saved_token(args.url)
    if not token:
        return None

    async def me() -> str | None:
        async with webclient.connect(args.url, token) as api:
            user = (await api.json("/api/me", keys=("user",)))["user"]
            return user.get("name") if isinstance(user, dict) else None

    return asyncio.run(me())


def ask_new_account_passwords(args: argparse.Namespace) -> None:
    """For `user add`: the new account's password (typed twice), then, for an admin
    account, the asker's own."""
    args.password = _password(args, f"Password for {args.name}: ", confirm=True)
    args.current_password = _confirmation(args) if args.role == ADMIN else ""


async def cmd_login(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json(
        "/api/login", "POST", keys=("token",), json={"username": args.username, "password": args.password}
    )
    if not isinstance(answer["token"], str) or not isinstance(answer.get("user") or {}, dict):
        raise api.not_myyoutube("its 'token' is not one")  # and must not be saved as one
    try:
        path = webclient.save_token(args.url, answer["token"])
    except OSError as exc:
        raise ToolError(
            f"signed in, but cannot save the token in {webclient.token_path()}: {exc.strerror or exc} "
            f"(${webclient.TOKEN_ENV} or $XDG_CONFIG_HOME can point elsewhere)"
        ) from None
    user = answer.get("user") or {}
    return report(
        args,
        {"user": user, "token_file": str(path)},
        f"signed in as {user.get('name')}; token saved in {path}",
    )


def forget_earlier_release_token(args: argparse.Namespace) -> None:
    """logout's first step, before the saved token is read: a token file of an earlier
    release (one bare token, its server unknown) is sent to no server, so every command
    refuses to run with it; logout removes it here, then goes on as without a token."""
    if webclient.forget_earlier_release_token():
        print(
            f"myyoutube: removed the token an earlier release saved in {webclient.token_path()} "
            "(it was sent to no server; its session ends when it expires)",
            file=sys.stderr,
        )


async def cmd_logout(api: Api, args: argparse.Namespace) -> int:
    try:
        answer = await api.json("/api/logout", "POST", keys=("signed_out",))
    except Unauthorized:
        # Expired or already revoked: there is nothing left to revoke, but a token file
        # the server refuses would fail every later command, so it goes all the same.
        forgot = webclient.forget_token(args.url)
        return report(
            args,
            {"token_file_removed": forgot, "already_invalid": True},
            "signed out (the saved token was no longer valid)",
        )
    forgot = webclient.forget_token(args.url)
    # Without a token the server has no session to end: "signed out" would suggest one.
    said = "signed out" if answer["signed_out"] or forgot else f"not signed in at {args.url}"
    return report(args, dict(answer, token_file_removed=forgot), said)


def _with_own_password(args: argparse.Namespace, fields: dict) -> dict:
    """`fields` and, when the command asked for it, the asker's own password."""
    return dict(fields, current_password=args.current_password) if args.current_password else fields


async def cmd_user_add(api: Api, args: argparse.Namespace) -> int:
    fields = {
        "username": args.name,
        "password": args.password,
        "role": args.role,
        "quota_bytes": args.quota_bytes,
    }
    answer = await api.json(
        "/api/users", "POST", ok=(201,), keys=("user",), json=_with_own_password(args, fields)
    )
    return report(args, answer, f"added {args.name} ({args.role})")


def _quota_text(user: dict) -> str:
    """An account's quota as `user list` shows it; "-" for a viewer, who cannot upload."""
    if user.get("role") == VIEWER:
        return "-"
    return "unlimited" if user.get("quota_bytes") is None else size_text(user["quota_bytes"])


async def cmd_user_list(api: Api, args: argparse.Namespace) -> int:
    users = await api.records("/api/users", "users")
    if args.json:
        say_json({"users": users})
        return EXIT_OK
    rows = [
        (
            str(user.get("name")),
            str(user.get("role")),
            size_text(user.get("used_bytes")),
            _quota_text(user),
            str(user.get("sessions", 0)),
        )
        for user in users
    ]
    table(("NAME", "ROLE", "USED", "QUOTA", "SESSIONS"), rows, right={2, 3, 4})
    return EXIT_OK


async def cmd_user_set(api: Api, args: argparse.Namespace) -> int:
    fields: dict[str, object] = {}
    if args.role:
        fields["role"] = args.role
    if args.default_quota:
        fields["quota_bytes"] = None
    elif args.quota_bytes is not None:
        fields["quota_bytes"] = args.quota_bytes
    if not fields:
        raise ToolError("say what to change: --role, --quota-bytes or --default-quota")
    answer = await api.json(
        f"/api/users/{video_path(args.name)}", "PATCH", keys=("user",), json=_with_own_password(args, fields)
    )
    user = answer["user"]
    quota = "no quota" if user.get("quota_bytes") is None else f"a quota of {size_text(user['quota_bytes'])}"
    return report(args, answer, f"{args.name} is now {user['role']}, with {quota}")


async def cmd_user_remove(api: Api, args: argparse.Namespace) -> int:
    confirmed = _with_own_password(args, {}) or None  # no body at all when there is none
    answer = await api.json(
        "/api/users/" + video_path(args.name), "DELETE", keys=("removed",), json=confirmed
    )
    return report(args, answer, f"removed {args.name}; its sessions ended, its videos stay")


async def cmd_user_passwd(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json(
        f"/api/users/{video_path(args.name)}/password",
        "PUT",
        keys=("changed",),
        json=_with_own_password(args, {"password": args.password}),
    )
    if not args.own:
        return report(args, answer, f"changed the password of {args.name}; its sessions ended")
    # Every session of the account ended with the change, this command's token too: a
    # saved token the server refuses would only fail the next command. (One given in
    # $MYYOUTUBE_TOKEN is not the file's: the file is left alone.)
    forgot = not os.environ.get(webclient.TOKEN_ENV) and webclient.forget_token(args.url)
    return report(
        args,
        dict(answer, token_file_removed=forgot),
        "changed your password; every session of yours ended, this one too: "
        "sign in again with `myyoutube login`",
    )


def quota_bytes(text: str) -> int:
    """argparse type for --quota-bytes: permissions.parse_quota's size, or for
    "unlimited" MAX_QUOTA_BYTES (how one account is given no limit)."""
    try:
        quota = parse_quota(text)
    except BadSize as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return MAX_QUOTA_BYTES if quota is None else quota


def register(commands, add, common: argparse.ArgumentParser) -> None:
    """Add login, logout and user add|set|list|remove|passwd to the `myyoutube` parser."""
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-file", type=Path, help="read the password from this file's first line (default: prompt)"
    )
    login = add("login", cmd_login, "sign in and save the token for later commands", (common, password))
    login.add_argument("--username", help="the account (default: prompt)")
    # Signing in sends no token: the saved one may be the expired token this login
    # replaces, and the server refuses a request that carries an invalid one.
    login.set_defaults(anonymous=True, ask=ask_login)
    logout = add("logout", cmd_logout, "revoke the saved token and forget it")
    logout.set_defaults(ask=forget_earlier_release_token)
    user = commands.add_parser("user", help="manage accounts (admins)").add_subparsers(
        dest="user_command", required=True, metavar="USER_COMMAND"
    )

    def sub(name: str, run, summary: str, parents=(common,)) -> argparse.ArgumentParser:
        command = user.add_parser(name, parents=list(parents), help=summary, description=summary)
        command.set_defaults(run=run)
        return command

    own_password = argparse.ArgumentParser(add_help=False)
    own_password.add_argument(
        "--current-password-file",
        type=Path,
        help="your own password, when the act takes it (changing your own password, or any act on an "
        "admin account): read it from this file's first line (default: prompt)",
    )
    added = sub("add", cmd_user_add, "add an account", (common, password, own_password))
    added.add_argument("name", metavar="NAME")
    added.add_argument("--role", choices=("admin", "uploader", "viewer"), required=True)
    added.add_argument(
        "--quota-bytes",
        type=quota_bytes,
        default=None,
        help="bytes it may store (e.g. 20GiB), or unlimited (default: the master's default)",
    )
    added.set_defaults(ask=ask_new_account_passwords)
    changed = sub(
        "set",
        cmd_user_set,
        "change an account's role or quota (from its next request on)",
        (common, own_password),
    )
    changed.set_defaults(ask=ask_own_password_for_admins)
    changed.add_argument("name", metavar="NAME")
    changed.add_argument("--role", choices=("admin", "uploader", "viewer"))
    quota = changed.add_mutually_exclusive_group()
    quota.add_argument(
        "--quota-bytes",
        type=quota_bytes,
        help="bytes it may store (e.g. 20GiB), or unlimited (whatever the master's default)",
    )
    quota.add_argument("--default-quota", action="store_true", help="back to the master's default quota")
    sub("list", cmd_user_list, "list accounts")
    removed = sub("remove", cmd_user_remove, "remove an account (its videos stay)", (common, own_password))
    removed.add_argument("name", metavar="NAME")
    removed.set_defaults(ask=ask_own_password_for_admins)
    passwd = sub(
        "passwd",
        cmd_user_passwd,
        "set an account's password (your own, or another admin's, takes your current one too)",
        (common, password, own_password),
    )
    passwd.add_argument("name", metavar="NAME")
    passwd.set_defaults(ask=ask_passwd)
