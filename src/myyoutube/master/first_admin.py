"""The first admin account: made at the master's start, or from a password file.

Theory of operation
-------------------
An index without any account gets `admin` at start-up, with a random password written to
DATA_DIR/admin-password (mode 0600) and its path logged once: a fresh install has
someone who may make the other accounts. With `--admin-password-file F` (on the master,
or sent by a web front end as EnsureAdmin) the admin account is created with that
password, or reset to it if it has another; then the generated file, which no longer
holds the password, is removed. Passwords are hashed and checked by Accounts
(accounts.py), with its bounds on the work.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from myyoutube import service
from myyoutube.master import users
from myyoutube.permissions import ADMIN, ADMIN_USER

if TYPE_CHECKING:
    from myyoutube.master.accounts import Accounts

log = logging.getLogger(__name__)

# Where a first start leaves the generated admin password, inside the master's data dir.
ADMIN_PASSWORD_FILE = "admin-password"
# A generated password: 24 URL-safe characters, 144 random bits.
GENERATED_PASSWORD_BYTES = 18


async def ensure_admin(accounts: Accounts, password: str) -> bool:
    """Create `admin` with `password`, or reset it to `password`; False if it already
    had it (a restart with the same file keeps everyone signed in)."""
    account = accounts.users.accounts.get(ADMIN_USER)
    if account is None:
        accounts.users.add(ADMIN_USER, await accounts.hash_password(password), ADMIN, None, time.time())
        accounts.generated_password_path.unlink(missing_ok=True)
        log.warning("created the account %s from the given password", ADMIN_USER)
        return True
    if await accounts.verify_password(account["password_hash"], password):
        return False
    await accounts.replace_password(ADMIN_USER, password)
    log.warning("reset the password of %s from the given password; its sessions ended", ADMIN_USER)
    return True


async def bootstrap(accounts: Accounts, password_file: Path | None) -> None:
    """At start-up: the admin from `password_file`, or, on an index without any
    account, an admin with a generated password written beside the index."""
    if password_file is not None:
        password = service.read_password_file(password_file)
        try:
            users.check_password(password)
        except users.BadAccount as exc:
            raise service.StartupError(f"the admin password file {password_file} is unusable: {exc}") from exc
        await ensure_admin(accounts, password)
        return
    if accounts.users.accounts:
        return
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    write_private_file(accounts.generated_password_path, password + "\n")
    accounts.users.add(ADMIN_USER, await accounts.hash_password(password), ADMIN, None, time.time())
    # On the log (stderr), not stdout: stdout carries only the announcement line that
    # launchers wait for. myyoutube-cluster prints the path itself.
    log.warning("created the account %s; its password is in %s", ADMIN_USER, accounts.generated_password_path)


def write_private_file(path: Path, text: str) -> None:
    """Write a new file readable by its owner only (0600), replacing any old one."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
