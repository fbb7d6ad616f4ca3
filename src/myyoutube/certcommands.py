"""`myyoutube cert init|issue`: make the cluster CA and role certificates for several hosts.

Theory of operation
-------------------
These commands run on the operator's machine, never against a running cluster: `cert
init DIR` creates the cluster CA (DIR/ca.key, 0600, to keep offline; DIR/ca.crt), and
`cert issue --role ROLE --name NAME DIR` writes DIR/NAME/{ca.crt,node.crt,node.key}, the
directory to copy to that host and pass as the role's --cert-dir. Failures are one line
and exit status 1 (main() in commandline.py prints CertError like any ToolError).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from myyoutube import certs


def cmd_init(args: argparse.Namespace) -> int:
    certs.init_ca(args.dir)
    print(f"cluster CA created in {args.dir} (keep {args.dir / certs.CA_KEY} private)")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    out = certs.issue(args.dir, args.role, args.name, args.out)
    print(f"{args.role} certificate for {args.name} in {out}: copy it to that host and pass --cert-dir {out}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `cert init` and `cert issue` to the `myyoutube` command's subcommands."""
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
