"""`myyoutube-master`: start the master (index + datanode registry)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from myyoutube import links, service, stream
from myyoutube.formatting import BadSize, human_size
from myyoutube.master import backup, first_admin, index_files, recovery, repair, snapshots
from myyoutube.master.accounts import Accounts
from myyoutube.master.index import Index
from myyoutube.master.resumable import DEFAULT_UPLOAD_EXPIRY_S
from myyoutube.master.server import MAX_CONNECTIONS, Master
from myyoutube.master.state import ClusterState
from myyoutube.permissions import parse_quota

# Fixed, so datanodes and web front ends configured once keep finding the master.
DEFAULT_PORT = 7000

DEFAULT_REPLICATION = 3
# An upload whose replica dies midway still commits on this many copies (HDFS's minimum
# is 1; 2 keeps a video readable through one more failure while repair runs).
DEFAULT_MIN_REPLICAS = 2
# HDFS waits 10.5 minutes; our datanodes are few and videos are watched live, so 30 s.
DEFAULT_DEAD_AFTER_S = 30.0
DEFAULT_HEARTBEAT_S = 3.0
# Room per account unless an admin sets another (admins are unlimited): a few hours of
# HD video each, so one account cannot fill a small cluster by itself.
DEFAULT_QUOTA_BYTES = 50 * 1024**3
# How uploads reach their replicas (--writes): the pipeline by default, since it sends
# each byte once and recovers a chain that loses any node (master/pipeline.py); fan-out
# stays available (transfer.py), e.g. where datanodes cannot reach each other.
WRITE_MODES = ("pipeline", "fanout")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="myyoutube-master", description="Keep the MyYoutube video index and datanode registry."
    )
    service.add_listen_flags(parser, DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, required=True, help="where the index is kept")
    _add_replication_flags(parser)
    _add_account_flags(parser)
    parser.add_argument(
        "--upload-expiry",
        type=service.positive_float,
        default=DEFAULT_UPLOAD_EXPIRY_S,
        help=f"seconds a resumable upload may sit idle before it is removed with its bytes "
        f"(default {DEFAULT_UPLOAD_EXPIRY_S:g})",
    )
    _add_recovery_flags(parser)
    service.add_common_flags(parser)
    args = parser.parse_args(argv)
    if args.min_replicas is None:
        args.min_replicas = min(DEFAULT_MIN_REPLICAS, args.replication)
    if args.min_replicas > args.replication:
        parser.error("--min-replicas cannot exceed --replication")
    if args.expect_datanodes is not None and not args.recover:
        parser.error("--expect-datanodes only applies with --recover")
    if args.dead_after < 2 * args.heartbeat:
        # A node is heard from once per heartbeat: with less than two between them, one
        # late heartbeat would declare a healthy node dead and start re-replicating it.
        parser.error("--dead-after must be at least twice --heartbeat")
    return args


def _add_replication_flags(parser: argparse.ArgumentParser) -> None:
    """How many copies, how a dead or frozen datanode is told, and how uploads reach them."""
    parser.add_argument(
        "--replication",
        type=service.positive_int,
        default=DEFAULT_REPLICATION,
        help=f"copies of every video (default {DEFAULT_REPLICATION})",
    )
    parser.add_argument(
        "--min-replicas",
        type=service.positive_int,
        default=None,
        help=f"fewest copies an upload may commit with (default "
        f"{DEFAULT_MIN_REPLICAS}, at most --replication)",
    )
    parser.add_argument(
        "--dead-after",
        type=service.positive_float,
        default=DEFAULT_DEAD_AFTER_S,
        help=f"seconds of silence before a datanode is dead (default {DEFAULT_DEAD_AFTER_S:g})",
    )
    parser.add_argument(
        "--heartbeat",
        type=service.positive_float,
        default=DEFAULT_HEARTBEAT_S,
        help=f"the datanodes' heartbeat interval (default {DEFAULT_HEARTBEAT_S:g})",
    )
    parser.add_argument(
        "--stall-timeout",
        type=service.positive_float,
        default=stream.DEFAULT_STALL_S,
        help=f"seconds a datanode may fall silent mid-read or mid-write before it is taken "
        f"for frozen and the work moves to another replica (default {stream.DEFAULT_STALL_S:g})",
    )
    parser.add_argument(
        "--writes",
        choices=WRITE_MODES,
        default="pipeline",
        help="how uploads reach their replicas: 'pipeline' (the default) sends each byte once, "
        "down a chain of datanodes that is re-formed over the survivors if a node is lost "
        "mid-upload; 'fanout' sends it to every replica (--replication times the master's egress)",
    )


def _default_quota(text: str) -> int:
    """argparse type for --quota-bytes: permissions.parse_quota, as for one account
    (`myyoutube user set NAME --quota-bytes`), "unlimited" being 0: no default quota.
    0 is kept for the index's earlier users; on an account it means nothing may be
    stored, so "unlimited" is the spelling the help shows."""
    try:
        quota = parse_quota(text)
    except BadSize as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return 0 if quota is None else quota


def _add_account_flags(parser: argparse.ArgumentParser) -> None:
    """Accounts: the default quota, the admin's password, and anonymous access."""
    parser.add_argument(
        "--quota-bytes",
        type=_default_quota,
        default=DEFAULT_QUOTA_BYTES,
        help=f"bytes of video each non-admin account may store unless given its own quota, "
        f"e.g. 20GiB, or unlimited (default {human_size(DEFAULT_QUOTA_BYTES)})",
    )
    parser.add_argument(
        "--admin-password-file",
        type=Path,
        default=None,
        help="create the account 'admin' with the password in this file, or reset it to it "
        "(default: a first start writes a random one to DATA_DIR/admin-password)",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="answer no request of an anonymous visitor: every web front end must sign people "
        "in (default: anonymous visitors may watch public videos)",
    )


def _add_recovery_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snapshot-interval",
        type=service.positive_float,
        default=snapshots.DEFAULT_SNAPSHOT_INTERVAL_S,
        help=f"seconds between snapshots of the index stored on the datanodes (default "
        f"{snapshots.DEFAULT_SNAPSHOT_INTERVAL_S:g}; one is also taken at a clean stop)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--recover",
        action="store_true",
        help="rebuild a lost index from the datanodes (their index snapshots and blob sidecars); "
        "the data directory must be empty",
    )
    start.add_argument(
        "--restore",
        type=Path,
        metavar="FILE",
        help="start from an index backup made by `myyoutube admin backup`; the data directory must be empty",
    )
    parser.add_argument(
        "--recover-wait",
        type=service.positive_float,
        default=recovery.DEFAULT_RECOVER_WAIT_S,
        help=f"with --recover, the longest wait for datanodes to report (default {recovery.DEFAULT_RECOVER_WAIT_S:g})",
    )
    parser.add_argument(
        "--expect-datanodes",
        type=service.positive_int,
        default=None,
        help="with --recover, start rebuilding as soon as this many datanodes reported",
    )


async def _rebuild_index(args: argparse.Namespace, tls) -> int:
    """With --recover or --restore, make the index from the datanodes or a backup; the
    port to listen on (the one recovery listened on, if 0 was asked for)."""
    if not (args.recover or args.restore):
        return args.port
    index_files.require_empty(args.data_dir, "--recover" if args.recover else "--restore")
    if args.restore:
        index_files.restore(args.restore, args.data_dir)
        return args.port
    options = recovery.Options(
        args.data_dir,
        args.host,
        args.port,
        tls,
        args.heartbeat,
        args.dead_after,
        args.stall_timeout,
        args.recover_wait,
        args.expect_datanodes,
    )
    return await recovery.recover(options)


async def serve(args: argparse.Namespace) -> None:
    tls = service.load_tls(args.cert_dir, args.host, "master")
    try:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise service.StartupError(f"cannot create {args.data_dir}: {exc.strerror or exc}") from exc
    service.lock_data_dir(args.data_dir, "myyoutube-master")
    backup.remove_leftovers(args.data_dir)
    port = await _rebuild_index(args, tls)
    try:
        index = Index(args.data_dir / "index.sqlite3", time.time())
    except Exception as exc:  # OSError or sqlite3.Error: either way one line for the operator
        raise service.StartupError(f"cannot open the index in {args.data_dir}: {exc}") from exc
    state = ClusterState(args.dead_after, args.heartbeat, started_at=time.time())
    accounts = Accounts(index, args.quota_bytes or None, args.data_dir)
    try:
        await first_admin.bootstrap(accounts, args.admin_password_file)
    except BaseException:
        index.close()
        raise
    master = Master(
        index,
        state,
        tls,
        args.replication,
        args.min_replicas,
        accounts,
        args.stall_timeout,
        private=args.private,
        upload_expiry_s=args.upload_expiry,
    )
    master.write_pipeline = args.writes == "pipeline"
    server = await service.listen(
        lambda: links.serve_connections(
            master.handle,
            args.host,
            port,
            tls,
            MAX_CONNECTIONS,
            master.allowed_roles(),
            master.connection_accepted,
        ),
        args.host,
        port,
    )
    await server.start_serving()  # listen() happens here: announce only after it
    service.announce("myyoutube-master", args.host, service.bound_port(server))
    try:
        async with server, asyncio.TaskGroup() as tasks:
            tasks.create_task(repair.repair_forever(master))
            tasks.create_task(master.prune_retired_forever())
            tasks.create_task(master.flush_views_forever())
            tasks.create_task(master.resumable.expire_forever())
            tasks.create_task(snapshots.snapshot_forever(master, args.snapshot_interval))
            await server.serve_forever()
    finally:
        await snapshots.take_at_stop(master)
        index.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    service.run("myyoutube-master", args.log_level, lambda: serve(args), args.event_loop)
