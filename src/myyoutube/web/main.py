"""`myyoutube-web`: start the web front end in front of a master.

Theory of operation
-------------------
Parse the flags, reach the master (and, with `--admin-password-file`, have it create or
reset the admin account), build the app, listen (over TLS with `--tls-cert/--tls-key`),
then learn the Host names the front end answers to: `--public-url`'s, or the bound
address's, plus loopback names (web/origin.py). `--private` makes every page need a
sign-in. `--metrics-port` serves /metrics alone on 127.0.0.1 for a scraper that cannot
sign in. Behind a reverse proxy, `--trusted-proxy ADDRESS` makes X-Forwarded-For and
X-Forwarded-Proto from that address count (client address for throttling and slots,
https for Secure cookies and the origin check).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
from pathlib import Path

from aiohttp import web

from myyoutube import links, service
from myyoutube.client import MasterClient
from myyoutube.direct_reads import DirectReads
from myyoutube.formatting import human_size
from myyoutube.master.users import BadAccount, check_password
from myyoutube.rates import MinimumRate
from myyoutube.stream import RequestFailed
from myyoutube.web import admin, connections, origin, pace, uploads
from myyoutube.web.common import CONFIG, WebConfig
from myyoutube.web.public_tls import CertificateError, PublicCertificate
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
# Uploads and streams at once from one client address: a household streams a few videos
# at a time; one address cannot take every slot.
DEFAULT_MAX_UPLOADS_PER_CLIENT = 4
DEFAULT_MAX_STREAMS_PER_CLIENT = 32
# Open connections from one client address: a browser opens at most 6 per site, a household
# behind one address a few browsers and players; one address cannot hold every socket.
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64
# How long in-flight requests get to finish on SIGTERM before connections are cut.
SHUTDOWN_GRACE_S = 5.0
# An idle keep-alive connection is closed after this long (Go's and nginx's ~75 s): long
# enough for a page's follow-up requests, short enough that idle sockets do not pile up.
KEEPALIVE_S = 75.0
# How often to try again to set the admin password while the master is not reachable.
ADMIN_RETRY_S = 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myyoutube-web", description="Serve the MyYoutube web site.")
    parser.add_argument("--master", type=service.address, required=True, help="the master's HOST:PORT")
    parser.add_argument(
        "--relay-reads",
        action="store_true",
        help="read videos' bytes through the master, not from the datanodes (for a front end "
        "that cannot reach the datanodes' addresses; reads that cannot are relayed anyway)",
    )
    parser.add_argument(
        "--no-local-reads",
        dest="local_reads",
        action="store_false",
        help="read every video's bytes over the network, even from datanodes on this machine "
        "(by default their files are read directly, from the page cache)",
    )
    service.add_listen_flags(parser, DEFAULT_PORT)
    parser.add_argument(
        "--max-upload-bytes",
        type=service.positive_size,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help=f"largest accepted upload, e.g. 2GiB (default {human_size(DEFAULT_MAX_UPLOAD_BYTES)})",
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
        help="where uploads are spooled for probing (default: the system's temporary directory)",
    )
    parser.add_argument(
        "--max-uploads-per-client",
        type=service.positive_int,
        default=DEFAULT_MAX_UPLOADS_PER_CLIENT,
        help=f"uploads at once from one client address, and by one account (default {DEFAULT_MAX_UPLOADS_PER_CLIENT})",
    )
    parser.add_argument(
        "--max-streams-per-client",
        type=service.positive_int,
        default=DEFAULT_MAX_STREAMS_PER_CLIENT,
        help=f"streams at once to one client address (default {DEFAULT_MAX_STREAMS_PER_CLIENT})",
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=service.positive_int,
        default=DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        help="open connections from one client address; more are closed at once "
        f"(default {DEFAULT_MAX_CONNECTIONS_PER_CLIENT}; a --trusted-proxy is exempt)",
    )
    parser.add_argument(
        "--header-timeout",
        type=service.positive_float,
        default=connections.HEADER_TIMEOUT_S,
        help=f"seconds a client has to send a request's headers (default {connections.HEADER_TIMEOUT_S:g})",
    )
    add_rate_flags(parser)
    add_access_flags(parser)
    service.add_common_flags(parser)
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.public_url is not None:
        try:
            origin.public_origin(args.public_url)
        except origin.BadPublicUrl as exc:
            parser.error(f"--public-url: {exc}")
    return args


def add_rate_flags(parser: argparse.ArgumentParser) -> None:
    """The minimum transfer rates below which a client is cut off (web/pace.py)."""
    parser.add_argument(
        "--min-upload-rate",
        type=service.positive_float,
        default=pace.MIN_UPLOAD_BYTES_PER_S,
        help=f"bytes/s an upload must average over each --rate-window (default {pace.MIN_UPLOAD_BYTES_PER_S:g})",
    )
    parser.add_argument(
        "--min-stream-rate",
        type=service.positive_float,
        default=pace.MIN_STREAM_BYTES_PER_S,
        help=f"bytes/s a viewer must take over each --rate-window (default {pace.MIN_STREAM_BYTES_PER_S:g})",
    )
    parser.add_argument(
        "--rate-window",
        type=service.positive_float,
        default=pace.RATE_WINDOW_S,
        help=f"seconds over which the minimum rates are averaged (default {pace.RATE_WINDOW_S:g})",
    )


def add_access_flags(parser: argparse.ArgumentParser) -> None:
    """Who may reach the front end, and how: accounts, exposure, TLS, proxies."""
    parser.add_argument(
        "--admin-password-file",
        type=Path,
        default=None,
        help="create the account 'admin' with the password in this file, or reset it to it",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="every page and video needs a sign-in (default: anonymous visitors may watch public videos)",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="the URL people use to reach this site, e.g. https://videos.example.org; requests "
        "naming another host are refused (default: the address it listens on)",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, help="the private key of --tls-cert (PEM)")
    parser.add_argument(
        "--trusted-proxy",
        type=service.ip_address,
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy's IP whose X-Forwarded-For and X-Forwarded-Proto are believed (repeatable)",
    )
    parser.add_argument(
        "--metrics-port",
        type=service.port_number,
        default=None,
        help="also serve /metrics, without sign-in, on 127.0.0.1:PORT (default: only admins, on the main port)",
    )


async def serve(args: argparse.Namespace) -> None:
    # The web's certificate is what the master checks; a web listening publicly without
    # one is refused like every role, so the whole cluster follows one rule.
    tls = service.load_tls(args.cert_dir, args.host, "web")
    _prepare_spool_dir(args.spool_dir)
    master_host, master_port = args.master
    direct = None if args.relay_reads else DirectReads(tls, args.local_reads)
    master = MasterClient(master_host, master_port, tls, direct=direct)
    admin_password = _admin_password(args.admin_password_file)
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
    config = WebConfig(
        private=args.private,
        public_url=args.public_url,
        tls=args.tls_cert is not None,
        trusted_proxies=frozenset(args.trusted_proxy),
    )
    app = make_app(
        master,
        args.max_upload_bytes,
        args.max_uploads,
        args.max_streams,
        args.spool_dir,
        config,
        args.max_uploads_per_client,
        args.max_streams_per_client,
        (
            MinimumRate(args.min_upload_rate, args.rate_window),
            MinimumRate(args.min_stream_rate, args.rate_window),
        ),
    )
    runners = [
        # aiohttp waits its shutdown_timeout twice over a request still running: once for
        # it to end, then again after cancelling it (which a response blocked on a viewer
        # that reads nothing, such as a paused player, does not notice). Half each keeps
        # the whole stop within the grace, and under a supervisor's SIGKILL deadline.
        web.AppRunner(
            app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S / 2, keepalive_timeout=KEEPALIVE_S
        )
    ]
    background = set()
    if admin_password is not None:
        background.add(asyncio.create_task(_ensure_admin(master, admin_password)))
    try:
        await runners[0].setup()
        deadlines = connections.HeaderDeadlines(args.header_timeout)
        gate = connections.ConnectionGate(
            args.max_connections_per_client, config.trusted_proxies, service.open_file_limit()
        )
        site = connections.GuardedSite(
            runners[0], args.host, args.port, deadlines, gate, ssl_context=_tls(args)
        )
        await service.listen(site.start, args.host, args.port)
        port = runners[0].addresses[0][1]
        _learn_hosts(app[CONFIG], args, port)
        if args.metrics_port is not None:
            runners.append(await _serve_metrics(master, app, args.metrics_port))
        service.announce("myyoutube-web", args.host, port)
        await asyncio.Event().wait()
    finally:
        for task in background:
            task.cancel()
        for runner in runners:
            await runner.cleanup()
        uploads.MEDIA_WORK.close()
        master.close()


async def _ensure_admin(master: MasterClient, password: str) -> None:
    """Have the master create or reset `admin` from --admin-password-file, as soon as it
    answers (it may start after this front end)."""
    while True:
        try:
            changed = await master.ensure_admin(password)
        except RequestFailed as exc:
            if exc.code != "unavailable":
                log.error("the master refused the admin password file: %s", exc.message)
                return
        except (OSError, TimeoutError) as exc:
            log.debug("the master is not reachable yet to set the admin password: %s", exc)
        else:
            log.info(
                "the admin account %s", "was created or reset" if changed else "already had that password"
            )
            return
        await asyncio.sleep(ADMIN_RETRY_S)


def _prepare_spool_dir(path: Path | None) -> None:
    """--spool-dir made if missing (private to this user, as data dirs are), and checked
    to be a folder this process may write in: a file given there was only found at the
    first upload, which every upload then failed with a 503 blaming the cluster."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise service.StartupError(f"cannot use --spool-dir {path}: it is a file, not a folder")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise service.StartupError(f"cannot use --spool-dir {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise service.StartupError(f"cannot use --spool-dir {path}: this user may not write in it")


def _admin_password(path: Path | None) -> str | None:
    if path is None:
        return None
    password = service.read_password_file(path)
    try:
        check_password(password)
    except BadAccount as exc:
        raise service.StartupError(f"the admin password file {path} is unusable: {exc}") from exc
    return password


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The listening context for --tls-cert/--tls-key, which follows their renewals."""
    if args.tls_cert is None:
        return None
    try:
        return PublicCertificate(args.tls_cert, args.tls_key).listening
    except CertificateError as exc:
        raise service.StartupError(str(exc)) from exc


def _learn_hosts(config: WebConfig, args: argparse.Namespace, port: int) -> None:
    """The Host names to answer, once the real port is known (it may have been 0)."""
    config.allowed_hosts = origin.allowed_hosts(args.public_url, args.host, port)
    if args.public_url is None and service.is_wildcard(args.host):
        config.any_ip_host_port = port


async def _serve_metrics(master: MasterClient, app: web.Application, port: int) -> web.AppRunner:
    metrics_app = admin.metrics_only_app(master, app)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await service.listen(web.TCPSite(runner, "127.0.0.1", port).start, "127.0.0.1", port)
    metrics_app[CONFIG].allowed_hosts = origin.allowed_hosts(None, "127.0.0.1", runner.addresses[0][1])
    return runner


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    service.run("myyoutube-web", args.log_level, lambda: serve(args), args.event_loop)
