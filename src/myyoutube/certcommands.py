"""`myyoutube cert init|issue|revoke`: the cluster CA, role certificates, revocation.

Theory of operation
-------------------
These commands run on the operator's machine, never against a running cluster: `cert
init DIR` creates the cluster CA (DIR/ca.key, 0600, to keep offline; DIR/ca.crt), and
`cert issue --role ROLE --name NAME DIR` writes DIR/NAME/{ca.crt,node.crt,node.key}, the
directory to copy to that host and pass as the role's --cert-dir. Issuing again for the
same name renews: copied over the host's --cert-dir, the new files are used from the
next link on, without a restart. `cert revoke DIR --cert FILE | --serial HEX` adds
certificates to DIR/revoked.txt (DIR is the CA's directory, whose list later `issue`s
copy, or any --cert-dir); copied into each host's --cert-dir it is obeyed from the next
link or request on. Failures are one line and exit status 1 (main() in commandline.py
prints CertError like any ToolError); what is printed goes through terminal.say, so a
reader that left early (`| head`) is no failure.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from myyoutube import certs
from myyoutube.terminal import say


def cmd_init(args: argparse.Namespace) -> int:
    certs.init_ca(args.dir)
    say(f"cluster CA created in {args.dir} (keep {args.dir / certs.CA_KEY} private)")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    out = certs.issue(args.dir, args.role, args.name, args.out)
    serial = certs.read_certificate(out / certs.NODE_CERT).serial
    say(
        f"{args.role} certificate for {args.name} (serial {serial:x}) in {out}: copy it to that "
        f"host and pass --cert-dir {out}"
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    serials: dict[int, str] = {}
    for path in args.cert:
        holder = certs.read_certificate(path)
        serials[holder.serial] = f"{holder.role or 'role-less'} {holder.name}"
    for text in args.serial:
        serials.setdefault(certs.parse_serial(text), "")
    if not serials:
        raise certs.CertError("name what to revoke: --cert FILE or --serial HEX (repeatable)")
    added = certs.revoke(args.dir, serials, datetime.datetime.now(datetime.UTC))
    for serial in serials:
        what = serials[serial] or "certificate"
        say(f"{what} (serial {serial:x}) {'revoked' if serial in added else 'was already revoked'}")
    say(
        f"copy {args.dir / certs.REVOKED} into every host's --cert-dir: roles refuse these "
        "certificates from their next link or request on"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `cert init`, `cert issue` and `cert revoke` to the `myyoutube` command's subcommands."""
    cert = commands.add_parser("cert", help="make certificates for a cluster spread over several hosts")
    actions = cert.add_subparsers(dest="cert_command", required=True, metavar="CERT_COMMAND")
    init = actions.add_parser("init", help="create the cluster CA in DIR")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.set_defaults(local=cmd_init)
    issue = actions.add_parser("issue", help="issue a role's certificate, signed by the CA in DIR")
    issue.add_argument("--role", required=True, choices=certs.ROLES)
    issue.add_argument("--name", required=True, help="the holder's name, e.g. the host's name")
    issue.add_argument("--out", type=Path, default=None, help="where to write it (default DIR/NAME)")
    issue.add_argument("dir", type=Path, metavar="DIR")
    issue.set_defaults(local=cmd_issue)
    revoke = actions.add_parser("revoke", help="list certificates as revoked in DIR/revoked.txt")
    revoke.add_argument(
        "--cert", type=Path, action="append", default=[], metavar="FILE", help="a certificate file to revoke"
    )
    revoke.add_argument(
        "--serial", action="append", default=[], metavar="HEX", help="a serial number to revoke (hexadecimal)"
    )
    revoke.add_argument("dir", type=Path, metavar="DIR", help="the CA's directory or a role's --cert-dir")
    revoke.set_defaults(local=cmd_revoke)
