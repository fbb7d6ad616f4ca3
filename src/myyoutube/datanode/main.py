"""`myyoutube-datanode`: start a datanode and register it with the master."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from myyoutube import links, protocol, service, stream
from myyoutube.datanode import control, identity, local_files
from myyoutube.datanode.server import ALLOWED_ROLES, MAX_CONNECTIONS, DataNode
from myyoutube.datanode.store import BlobStore
from myyoutube.datanode.transcode_worker import WORKER_ALIVE_EVERY_S
from myyoutube.datanode.transcoder import WORKER_STALL_TIMEOUT_S

# Re-reading replicas for bitrot at this rate costs a disk ~1 % of its bandwidth while
# still verifying ~400 GB a day.
DEFAULT_SCRUB_BYTES_PER_S = 5 * 1024 * 1024

# A fixed default port, so a node restarted without flags comes back where it was.
DEFAULT_PORT = 7100

# Used until the master says its own interval at registration (the master's flag wins).
DEFAULT_HEARTBEAT_S = 3.0
# Each replica is re-verified once a day: bitrot is slow, and a day bounds how long a
# rotten copy can sit unnoticed beside the good ones.
DEFAULT_SCRUB_INTERVAL_S = 24 * 3600.0


# One job at a time: each uses up to two cores (decoder and encoder threads are capped at
# two), which is what a storage node can spare beside serving reads.
DEFAULT_TRANSCODE_SLOTS = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="myyoutube-datanode", description="Store video replicas for a MyYoutube master."
    )
    parser.add_argument("--master", type=service.address, required=True, help="the master's HOST:PORT")
    service.add_listen_flags(parser, DEFAULT_PORT)
    parser.add_argument(
        "--advertise",
        default=None,
        metavar="HOST[:PORT]",
        help="the address the master and peers use to reach this node (default: --host and the "
        "bound port; required when --host is a wildcard such as 0.0.0.0)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="this node's folder: its node id and its blobs (one folder per datanode)",
    )
    parser.add_argument(
        "--heartbeat",
        type=service.positive_float,
        default=DEFAULT_HEARTBEAT_S,
        help=f"seconds between heartbeats until the master tells its own (default {DEFAULT_HEARTBEAT_S})",
    )
    parser.add_argument(
        "--capacity-bytes",
        type=service.positive_size,
        default=None,
        help="most bytes this node stores, e.g. 500GiB (default: what the disk can hold)",
    )
    parser.add_argument(
        "--scrub-bytes-per-s",
        type=service.positive_size,
        default=DEFAULT_SCRUB_BYTES_PER_S,
        help="bytes a second at which stored replicas are re-verified in the background, e.g. 10MiB",
    )
    parser.add_argument(
        "--scrub-interval",
        type=service.positive_float,
        default=DEFAULT_SCRUB_INTERVAL_S,
        help=f"seconds between verifications of one replica (default {DEFAULT_SCRUB_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--transcode-slots",
        type=service.non_negative_int,
        default=DEFAULT_TRANSCODE_SLOTS,
        help=f"transcode jobs this node runs at once, each a process using up to ~2 cores "
        f"(default {DEFAULT_TRANSCODE_SLOTS}; 0: none)",
    )
    parser.add_argument(
        "--transcode-stall-timeout",
        type=service.positive_float,
        default=WORKER_STALL_TIMEOUT_S,
        help="seconds a transcode job may go without progress before it is stopped and "
        f"retried (default {WORKER_STALL_TIMEOUT_S:g}; a worker speaks every "
        f"{WORKER_ALIVE_EVERY_S:g} s, so keep it well above that)",
    )
    service.add_common_flags(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    tls = service.load_tls(args.cert_dir, args.host, "datanode")
    node: DataNode | None = None

    async def handle(connection: stream.FrameStream, request: protocol.Message) -> None:
        assert node is not None, "connections are accepted only after start_serving(), once node is set"
        await node.handle_request(connection, request)

    server = await service.listen(
        lambda: links.serve_connections(handle, args.host, args.port, tls, MAX_CONNECTIONS, ALLOWED_ROLES),
        args.host,
        args.port,
    )
    port = service.bound_port(server)
    try:
        address = identity.advertised_address(args.host, port, args.advertise, args.master[0])
        folder = identity.node_directory(args.data_dir, port)
        folder.mkdir(parents=True, exist_ok=True)
        service.lock_data_dir(folder, "myyoutube-datanode")  # before the id: one id, one process
        service.check_writable(folder)
        node_id = identity.load_or_create_node_id(folder)
        store = BlobStore(folder, args.capacity_bytes)
    except ValueError as exc:
        raise service.StartupError(str(exc)) from exc
    except OSError as exc:
        raise service.StartupError(f"cannot use data dir {args.data_dir}: {exc.strerror or exc}") from exc
    node = DataNode(
        store,
        args.master,
        address,
        node_id,
        tls,
        args.heartbeat,
        args.scrub_bytes_per_s,
        args.scrub_interval,
        args.transcode_slots,
        args.transcode_stall_timeout,
    )
    # Serve before registering: the master may send a replica the moment we are known.
    await server.start_serving()
    # A master that is not up yet is waited for (start order does not matter); announced
    # once registered, so whoever started us knows we are part of the cluster.
    link = await control.register_with_backoff(node)
    service.announce("myyoutube-datanode", args.host, port)
    local_socket = local_files.listen(port)
    async with server, asyncio.TaskGroup() as tasks:
        if local_socket is not None:
            tasks.create_task(local_files.serve_forever(node, local_socket))
        tasks.create_task(control.report_forever(node, link))
        tasks.create_task(control.rescan_forever(node))
        tasks.create_task(node.scrubber.run_forever())
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    service.run("myyoutube-datanode", args.log_level, lambda: serve(args), args.event_loop)
