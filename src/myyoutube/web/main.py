"""`myyoutube-web`: start the web front end in front of a master."""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from myyoutube import links, service
from myyoutube.client import MasterClient
from myyoutube.stream import RequestFailed
from myyoutube.web.server import make_app

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
# Large enough for a feature film at a good bitrate; operators raise or lower it.
DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024**3
# Uploads at once: each costs the master three replica connections and disk bandwidth
# shared by all; past this, 503 with Retry-After instead of everyone crawling.
DEFAULT_MAX_UPLOADS = 16
# Streams at once: each holds a few chunks of memory at every hop.
DEFAULT_MAX_STREAMS = 256
# How long in-flight requests get to finish on SIGTERM before connections are cut.
SHUTDOWN_GRACE_S = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myyoutube-web", description="Serve the MyYoutube web site.")
    parser.add_argument("--master", type=service.address, required=True, help="the master's HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=service.port_number,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=service.positive_int,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help=f"largest accepted upload (default {DEFAULT_MAX_UPLOAD_BYTES})",
    )
    parser.add_argument(
        "--max-uploads",
        type=service.positive_int,
        default=DEFAULT_MAX_UPLOADS,
        help=f"uploads at once before 503 (default {DEFAULT_MAX_UPLOADS})",
    )
    parser.add_argument(
        "--max-streams",
        type=service.positive_int,
        default=DEFAULT_MAX_STREAMS,
        help=f"streams at once before 503 (default {DEFAULT_MAX_STREAMS})",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="where uploads are spooled for probing and remuxing (default: the system's temporary directory)",
    )
    service.add_common_flags(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    # The web's certificate is what the master checks; a web listening publicly without
    # one is refused like every role, so the whole cluster follows one rule.
    tls = service.load_tls(args.cert_dir, args.host, "web")
    master_host, master_port = args.master
    master = MasterClient(master_host, master_port, tls)
    try:
        await master.list_page(limit=1)
    except (links.PeerRefused, ssl.SSLError) as exc:
        # Reached, but not a master of our cluster: a configuration error, not a delay.
        raise service.StartupError(f"the master at {master_host}:{master_port} is refused: {exc}") from exc
    except (OSError, TimeoutError, RequestFailed) as exc:
        # Start order does not matter: pages answer 503 until the master is up.
        log.warning(
            "the master at %s:%d is not reachable yet (%s); serving 503 until it is",
            master_host,
            master_port,
            exc,
        )
    app = make_app(master, args.max_upload_bytes, args.max_uploads, args.max_streams, args.spool_dir)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    try:
        await service.listen(site.start, args.host, args.port)
        service.announce("myyoutube-web", args.host, runner.addresses[0][1])
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    service.run("myyoutube-web", args.log_level, lambda: serve(args), args.event_loop)
