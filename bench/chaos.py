"""Chaos on the data path: crash, freeze and restart real role processes under load, then
check what a user would notice.

Usage: python bench/chaos.py [--seconds 60] [--seed 1] [--datanodes 4] [--settle-s 180] [--keep]

Theory of operation
-------------------
A cluster (`BenchCluster`: master, --datanodes datanodes and the web, each its own OS
process on 127.0.0.1, port 0, in a temporary folder) is started with short liveness
timings (heartbeat 0.3 s, dead after 3 s) and resumable uploads that expire after
UPLOAD_EXPIRY_S. For --seconds, clients work through the web front end as people do:

* plain uploaders POST /upload (multipart) a fresh video of 0.25-3 MiB;
* tus uploaders create an upload at /files/ and PATCH it in pieces; after a failure they
  ask HEAD for the offset and resume, and now and then give up (the session must expire)
  or terminate it with DELETE;
* streamers ask /stream and /original for random ranges (`bytes=a-b`, `bytes=a-`,
  `bytes=-n`, none) over a raw socket with `Connection: close`, so that every byte the
  web sent is seen, including anything after the declared body;
* an editor retitles and deletes videos with PATCH and DELETE /videos/NAME.

Meanwhile a fault loop, driven by --seed, picks a fault every 1-3 s: SIGKILL a datanode
(restarted on its folder 2-8 s later), SIGSTOP a datanode for 1-6 s then SIGCONT, SIGKILL
the master and restart it on the same folder and port, SIGKILL the web and restart it on
the same port. At most one datanode is out at a time, so every acknowledged video keeps
at least two live copies. Processes are signalled by their own pid only. The seed fixes
the order of faults and every client's choices, not how they interleave in time: two runs
of one seed hit the same kinds of trouble, not the same requests.

During the run every answer is checked as it arrives; a breach is a *violation*:

* a refusal (status >= 400) must be JSON {"error": "a sentence"};
* every request must be answered (or its connection cut) within REQUEST_BOUND_S;
* a range answer must carry the source file's bytes at the offsets its Content-Range
  names, and nothing may follow the declared body (a second HTTP response in the body);
  a body cut short must be a prefix of the right bytes;
* an upload's 201 (or a tus 204/200 with Video-Sha256) must give the source's sha256.

Once the faults stop, every role is resumed or restarted, the clients stop, and the
cluster gets up to --settle-s to converge: every acknowledged video on at least
REPLICATION datanodes (blob files hashed on disk), no copy of a deleted video left, no
partial upload file (`*.open*`, `*.part`) on any datanode. Then, over HTTP: every
acknowledged video is listed by /listar and reads back byte for byte from /original and
/stream; a deleted one is a 404; an upload whose outcome the client never learnt may
exist or not, but if it is listed it must be intact; a retitled video has a title it was
given. The script prints the counts of every outcome and each violation, and exits 1 if
there was any.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import random
import signal
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchlib import MIB, BenchCluster, auth_headers, make_video_file, require_loopback, run_context

# Any one request must be answered (or its connection cut) within this: the slowest thing
# a client does is a 3 MiB upload, which takes well under a second on an idle cluster;
# a frozen datanode is given up after the master's 2 s stall timeout and a restarted
# master answers within a few seconds.
REQUEST_BOUND_S = 30.0
VIDEO_MIN_BYTES, VIDEO_MAX_BYTES = 256 * 1024, 3 * MIB
# tus PATCH bodies: small enough that most uploads take several, so faults land between.
PATCH_BYTES = 256 * 1024
# A tus uploader resumes after a failure for this long before it gives up on the upload.
RESUME_FOR_S = 20.0
# Idle resumable uploads are removed after this (the master's --upload-expiry): shorter
# than the settle time, so abandoned sessions must be gone before the final checks.
UPLOAD_EXPIRY_S = 15.0
REPLICATION = 3
CLIENTS = {"plain": 2, "tus": 2, "stream": 3, "edit": 1}
# Seconds between faults, a killed datanode's downtime, a frozen one's pause.
FAULT_GAP_S, DATANODE_DOWN_S, PAUSE_S, RESTART_AFTER_S = (1.0, 3.0), (2.0, 8.0), (1.0, 6.0), (0.2, 2.0)
# A client pauses this long after its request failed, so a dead web is not hammered.
BACKOFF_S = 0.3
# While settling, the datanodes' folders are scanned this often, and what is still
# outstanding is printed this often. Repair is paced (MAX_REPAIRS_PER_NODE copies a node
# per second on the master), so a run with few datanodes can take minutes to converge.
SETTLE_POLL_S, SETTLE_REPORT_S = 2.0, 10


@dataclass
class Source:
    path: Path
    sha256: str
    size: int


@dataclass
class Ledger:
    """What the clients were told, and every breach of the rules above."""

    acknowledged: dict[str, Source] = field(default_factory=dict)
    attempted: dict[str, Source] = field(default_factory=dict)  # every upload, acked or not
    deleted: set[str] = field(default_factory=set)
    delete_tried: set[str] = field(default_factory=set)  # outcome unknown (no answer)
    titles: dict[str, set[str]] = field(default_factory=dict)  # a video -> titles it may have
    counts: collections.Counter = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    # (killed, back) monotonic times of each web outage: a connection closed with no
    # answer is the crash's doing only if the request overlapped one.
    web_outages: list[tuple[float, float]] = field(default_factory=list)
    web_down_since: float | None = None

    def unanswered(self, what: str, started: float, why: str) -> None:
        """A connection that ended with no answer: a violation unless the web was down."""
        ended = time.monotonic()
        outages = [*self.web_outages, (self.web_down_since or ended + 1, ended)]
        if any(started <= back and ended >= killed for killed, back in outages):
            self.counts[f"{what}: no answer, web down ({why})"] += 1
        else:
            self.violation(f"{what}: connection closed with no answer while the web was up ({why})")

    def violation(self, what: str) -> None:
        what = f"{time.strftime('%H:%M:%S')} {what}"  # wall clock, as the roles' logs have it
        self.violations.append(what)
        print(f"VIOLATION: {what}", flush=True)

    def live(self) -> list[str]:
        return sorted(set(self.acknowledged) - self.deleted - self.delete_tried)


@dataclass
class Answer:
    status: int  # 0: no answer (refused connection, cut, or hang)
    headers: dict[str, str]
    body: bytes


def check_refusal(ledger: Ledger, what: str, answer: Answer) -> None:
    """A status >= 400 must carry {"error": "a sentence"}."""
    try:
        sentence = json.loads(answer.body).get("error")
    except (ValueError, AttributeError):
        sentence = None
    if not isinstance(sentence, str) or not sentence.strip():
        ledger.violation(f"{what}: {answer.status} without a JSON sentence: {answer.body[:200]!r}")
    else:  # which refusals: the sentence without its request id
        ledger.counts[f"  {answer.status} {sentence.partition(' (request')[0][:90]}"] += 1


async def call(
    session: aiohttp.ClientSession, ledger: Ledger, what: str, method: str, url: str, **kw
) -> Answer:
    """One request through aiohttp, bounded by REQUEST_BOUND_S, counted and checked."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(REQUEST_BOUND_S):
            async with session.request(method, url, **kw) as response:
                answer = Answer(response.status, dict(response.headers), await response.read())
    except TimeoutError:
        ledger.violation(f"{what} {url}: no answer within {REQUEST_BOUND_S:g}s")
        return Answer(0, {}, b"")
    except aiohttp.ClientError as exc:
        ledger.unanswered(what, started, type(exc).__name__)
        await asyncio.sleep(BACKOFF_S)
        return Answer(0, {}, b"")
    ledger.counts[f"{what}: {answer.status}"] += 1
    if answer.status >= 400 and method != "HEAD":  # a HEAD answer has no body
        check_refusal(ledger, what, answer)
        await asyncio.sleep(BACKOFF_S)
    return answer


async def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bytes]:
    """GET over a socket of its own with Connection: close, read to EOF: (status, headers,
    body as declared by Content-Length, whatever followed it). Status 0: no status line."""
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await reader.read()  # until the server closes: Connection: close
    finally:
        writer.close()
    head, found, rest = data.partition(b"\r\n\r\n")
    if not found:
        return 0, {}, b"", data
    status_line, *fields = head.decode("latin-1").split("\r\n")
    answer_headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    length = int(answer_headers.get("content-length", len(rest)))
    return int(status_line.split()[1]), answer_headers, rest[:length], rest[length:]


def pick_range(rng: random.Random, size: int) -> tuple[str | None, int, int]:
    """A Range header a player might send, and the bytes [start, end) it asks for."""
    kind = rng.choice(["closed", "open", "suffix", "none"])
    start = rng.randrange(size)
    if kind == "closed":
        end = min(size, start + rng.randint(1, 512 * 1024))
        return f"bytes={start}-{end - 1}", start, end
    if kind == "open":
        return f"bytes={start}-", start, size
    if kind == "suffix":
        count = rng.randint(1, size)
        return f"bytes=-{count}", size - count, size
    return None, 0, size


async def read_range(
    ledger: Ledger, url: str, route: str, name: str, source: Source, rng: random.Random
) -> None:
    """One range read of `name`, its bytes compared with the source file's."""
    header, start, end = pick_range(rng, source.size)
    what = f"GET /{route}"
    headers = {**auth_headers(url), **({"Range": header} if header else {})}
    started = time.monotonic()
    try:
        async with asyncio.timeout(REQUEST_BOUND_S):
            status, got, body, after = await raw_get(url, f"/{route}/{urllib.parse.quote(name)}", headers)
    except TimeoutError:
        ledger.violation(f"{what} {name} {header}: no answer within {REQUEST_BOUND_S:g}s")
        return
    except OSError as exc:
        ledger.unanswered(what, started, type(exc).__name__)
        await asyncio.sleep(BACKOFF_S)
        return
    if status == 0 and not after:
        ledger.unanswered(what, started, "closed before the status line")
        return
    ledger.counts[f"{what}: {status}"] += 1
    if after:
        ledger.violation(f"{what} {name} {header}: {len(after)} bytes after the body: {after[:80]!r}")
    if status == 0 or "chunked" in got.get("transfer-encoding", ""):
        ledger.violation(f"{what} {name} {header}: not a whole HTTP answer: {got} {body[:80]!r}")
        return
    if status >= 400:
        check_refusal(ledger, f"{what} {name}", Answer(status, got, body))
        await asyncio.sleep(BACKOFF_S)
        return
    if status == 206:
        content_range = got.get("content-range", "")
        first, _, rest = content_range.removeprefix("bytes ").partition("-")
        last, _, total = rest.partition("/")
        if (int(first), int(last) + 1, int(total)) != (start, end, source.size):
            ledger.violation(f"{what} {name} {header}: Content-Range {content_range}")
            return
    elif status != 200 or (header is not None and (start, end) != (0, source.size)):
        ledger.violation(f"{what} {name} {header}: status {status}")
        return
    with open(source.path, "rb") as file:
        file.seek(start)
        expected = file.read(end - start)
    if len(body) < len(expected):
        ledger.counts[f"{what}: cut short"] += 1
    if body != expected[: len(body)]:
        ledger.violation(f"{what} {name} {header}: wrong bytes in the answer")


# --- clients ----------------------------------------------------------------------------


class Clients:
    """The users: each coroutine loops until `stop` is set."""

    def __init__(self, url: str, folder: Path, ledger: Ledger, seed: int) -> None:
        self.url, self.folder, self.ledger, self.seed = url, folder, ledger, seed
        self.stop = asyncio.Event()
        self.made = 0

    async def new_source(self, rng: random.Random, kind: str) -> tuple[str, Source]:
        self.made += 1
        name = f"chaos-{self.seed}-{kind}-{self.made}.mp4"
        size = rng.randint(VIDEO_MIN_BYTES, VIDEO_MAX_BYTES)
        path = self.folder / name
        sha256 = await asyncio.to_thread(make_video_file, path, size)
        source = Source(path, sha256, size)
        self.ledger.attempted[name] = source
        return name, source

    def acknowledge(self, what: str, name: str, source: Source, sha256: str | None) -> None:
        if sha256 != source.sha256:
            self.ledger.violation(f"{what} {name}: acknowledged with sha256 {sha256}, sent {source.sha256}")
        self.ledger.acknowledged[name] = source

    async def plain_worker(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        while not self.stop.is_set():
            name, source = await self.new_source(rng, "plain")
            form = aiohttp.FormData()
            form.add_field("file", source.path.read_bytes(), filename=name, content_type="video/mp4")
            answer = await call(
                session, self.ledger, "POST /upload", "POST", f"{self.url}/upload",
                data=form, headers=auth_headers(self.url),
            )  # fmt: skip
            if answer.status == 201:
                self.acknowledge("POST /upload", name, source, json.loads(answer.body).get("sha256"))

    async def tus_worker(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        while not self.stop.is_set():
            name, source = await self.new_source(rng, "tus")
            metadata = f"filename {base64.b64encode(name.encode()).decode()}"
            tus = {"Tus-Resumable": "1.0.0", **auth_headers(self.url)}
            created = await call(
                session, self.ledger, "POST /files/", "POST", f"{self.url}/files/",
                headers={**tus, "Upload-Length": str(source.size), "Upload-Metadata": metadata},
            )  # fmt: skip
            if created.status == 201:
                await self.tus_send(
                    session, rng, f"{self.url}{created.headers['Location']}", name, source, tus
                )

    async def tus_send(
        self, session, rng: random.Random, address: str, name: str, source: Source, tus
    ) -> None:
        """PATCH the file in pieces, resuming from HEAD's offset after a failure."""
        offset, failed_at = 0, None
        data = source.path.read_bytes()
        while not self.stop.is_set():
            if rng.random() < 0.03:  # the user closes the tab, or presses cancel
                if rng.random() < 0.5:
                    await call(session, self.ledger, "DELETE /files/", "DELETE", address, headers=tus)
                self.ledger.counts["tus: given up by the client"] += 1
                return
            piece = data[offset : offset + PATCH_BYTES]
            answer = await call(
                session, self.ledger, "PATCH /files/", "PATCH", address, data=piece,
                headers={**tus, "Upload-Offset": str(offset),
                         "Content-Type": "application/offset+octet-stream"},
            )  # fmt: skip
            if answer.status == 204 and "Video-Sha256" not in answer.headers:
                offset, failed_at = int(answer.headers["Upload-Offset"]), None
                continue
            if answer.status in (200, 204):
                self.acknowledge("tus", name, source, answer.headers.get("Video-Sha256"))
                return
            failed_at = failed_at or time.monotonic()
            if time.monotonic() - failed_at > RESUME_FOR_S or answer.status in (400, 404, 410, 413, 415):
                self.ledger.counts["tus: abandoned after failures"] += 1
                return
            status = await call(session, self.ledger, "HEAD /files/", "HEAD", address, headers=tus)
            if status.status == 200 and "Video-Sha256" in status.headers:
                self.acknowledge("tus HEAD", name, source, status.headers["Video-Sha256"])
                return
            if status.status == 200:
                offset = int(status.headers["Upload-Offset"])

    async def stream_worker(self, rng: random.Random) -> None:
        while not self.stop.is_set():
            live = self.ledger.live()
            if not live:
                await asyncio.sleep(0.2)
                continue
            name = rng.choice(live)
            route = rng.choice(["stream", "original"])
            await read_range(self.ledger, self.url, route, name, self.ledger.acknowledged[name], rng)

    async def edit_worker(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            live = self.ledger.live()
            if not live:
                continue
            name = rng.choice(live)
            address = f"{self.url}/videos/{urllib.parse.quote(name)}"
            if rng.random() < 0.25:
                await self.delete(session, name, address)
                continue
            title = f"retitled {rng.randrange(10**6)}"
            if name in self.ledger.titles:  # applied, or maybe applied if no answer comes
                self.ledger.titles[name].add(title)
            answer = await call(
                session, self.ledger, "PATCH /videos", "PATCH", address,
                json={"title": title}, headers=auth_headers(self.url),
            )  # fmt: skip
            if answer.status == 200:
                self.ledger.titles[name] = {title}
            elif answer.status == 0 or answer.status >= 500:
                self.ledger.titles.pop(name, None)  # whether it is the first title now is unknown

    async def delete(self, session: aiohttp.ClientSession, name: str, address: str) -> None:
        answer = await call(
            session, self.ledger, "DELETE /videos", "DELETE", address, headers=auth_headers(self.url)
        )
        if answer.status == 200 or (answer.status == 404 and name in self.ledger.delete_tried):
            self.ledger.deleted.add(name)
        elif answer.status == 0 or answer.status >= 500:
            self.ledger.delete_tried.add(name)  # done or not: only a later answer tells

    async def run(self, rng: random.Random) -> None:
        """Every client at once, each with a generator of its own seeded from `rng`."""
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            start = {
                "plain": lambda own: self.plain_worker(session, own),
                "tus": lambda own: self.tus_worker(session, own),
                "stream": self.stream_worker,
                "edit": lambda own: self.edit_worker(session, own),
            }
            workers = [
                start[kind](random.Random(rng.random())) for kind in CLIENTS for _ in range(CLIENTS[kind])
            ]
            await asyncio.gather(*workers)


# --- faults -----------------------------------------------------------------------------


class Faults:
    """Kills, freezes and restarts the cluster's processes, by pid, as the seed says."""

    def __init__(self, cluster: BenchCluster, ledger: Ledger, rng: random.Random) -> None:
        self.cluster, self.ledger, self.rng = cluster, ledger, rng
        self.started = time.monotonic()
        self.datanode_out = False  # at most one datanode killed or frozen at a time
        self.pending: list[asyncio.Task] = []

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s {what}"
        self.ledger.faults.append(line)
        print(f"fault: {line}", flush=True)

    async def run(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(*FAULT_GAP_S))
            kind = self.rng.choice(["kill datanode", "pause datanode", "kill master", "kill web"])
            if kind.endswith("datanode"):
                if not self.datanode_out:
                    self.datanode_out = True
                    number = self.rng.randrange(len(self.cluster.datanodes))
                    self.pending.append(asyncio.create_task(self.datanode_fault(kind, number)))
            else:
                await self.crash_and_restart(kind.removeprefix("kill "), self.rng.uniform(*RESTART_AFTER_S))
        await asyncio.gather(*self.pending)

    async def datanode_fault(self, kind: str, number: int) -> None:
        node = self.cluster.datanodes[number]
        if kind == "pause datanode":
            held = self.rng.uniform(*PAUSE_S)
            self.note(f"SIGSTOP datanode-{number} (pid {node.process.pid}) for {held:.1f}s")
            node.pause()
            await asyncio.sleep(held)
            node.resume()
        else:
            held = self.rng.uniform(*DATANODE_DOWN_S)
            self.note(f"SIGKILL datanode-{number} (pid {node.process.pid}), back in {held:.1f}s")
            node.kill()
            await asyncio.sleep(held)
            await self.restart(f"datanode-{number}", lambda: self.cluster.restart_datanode(number))
        self.datanode_out = False

    async def crash_and_restart(self, role: str, after_s: float) -> None:
        process = getattr(self.cluster, role)
        self.note(f"SIGKILL {role} (pid {process.process.pid}), restarted after {after_s:.1f}s")
        if role == "web":
            self.ledger.web_down_since = time.monotonic()
        process.kill()
        await asyncio.sleep(after_s)
        restart = self.cluster.restart_master if role == "master" else self.cluster.restart_web
        await self.restart(role, restart)
        if self.ledger.web_down_since is not None:
            self.ledger.web_outages.append((self.ledger.web_down_since, time.monotonic()))
            self.ledger.web_down_since = None

    async def restart(self, role: str, restart: Callable[[], None]) -> None:
        """Start a killed role again (in a thread: start_role waits for its announcement)."""
        for _ in range(5):
            try:
                await asyncio.to_thread(restart)
                return
            except Exception as exc:  # a LaunchError, or the port taken meanwhile
                self.ledger.violation(f"{role} did not restart: {exc}")
                await asyncio.sleep(1.0)
        raise RuntimeError(f"{role} could not be restarted; see the logs")


# --- after the faults -------------------------------------------------------------------


def scan_datanodes(cluster: BenchCluster, hashes: dict) -> tuple[collections.Counter, list[Path]]:
    """(sha256 -> datanodes holding a committed blob of it, partial upload files)."""
    copies: collections.Counter = collections.Counter()
    partial = []
    for number in range(len(cluster.datanodes)):
        held = set()
        for path in cluster.datanode_folder(number).rglob("*"):
            if ".open" in path.name or path.suffix == ".part":
                partial.append(path)
            elif path.suffix == ".blob":
                try:
                    stat = path.stat()
                    key = (path, stat.st_size, stat.st_mtime_ns)
                    if key not in hashes:
                        hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
                except FileNotFoundError:
                    continue  # removed while we looked
                held.add(hashes[key])
        copies.update(held)
    return copies, partial


async def settle(cluster: BenchCluster, ledger: Ledger, settle_s: float) -> collections.Counter:
    """Wait for replicas, deletions and expiries to converge; the final copy counts."""
    started, hashes = time.monotonic(), {}
    while True:
        copies, partial = await asyncio.to_thread(scan_datanodes, cluster, hashes)
        short = {n: copies[ledger.acknowledged[n].sha256] for n in ledger.live()}
        short = {n: count for n, count in short.items() if count < REPLICATION}
        left = {n: copies[ledger.acknowledged[n].sha256] for n in ledger.deleted}
        left = {n: count for n, count in left.items() if count}
        if not short and not left and not partial:
            print(f"settled in {time.monotonic() - started:.1f}s", flush=True)
            return copies
        waited = time.monotonic() - started
        if int(waited) // SETTLE_REPORT_S != int(waited - SETTLE_POLL_S) // SETTLE_REPORT_S:
            print(
                f"  {waited:.0f}s: {len(short)} videos short of {REPLICATION} copies, {len(left)} deleted "
                f"ones with copies left, {len(partial)} partial upload files",
                flush=True,
            )
        if waited > settle_s:
            for name, count in short.items():
                ledger.violation(f"{name}: acknowledged, {count} copies after {settle_s:g}s of settling")
            for name, count in left.items():
                ledger.violation(f"{name}: deleted, still {count} copies after {settle_s:g}s")
            for path in partial:
                ledger.violation(f"partial upload file left on a datanode: {path}")
            return copies
        await asyncio.sleep(SETTLE_POLL_S)


async def listed(session: aiohttp.ClientSession, url: str) -> dict[str, dict]:
    """Every video /listar lists, page by page, by name."""
    videos, cursor = {}, ""
    while True:
        async with session.get(f"{url}/listar", params={"cursor": cursor} if cursor else {}) as response:
            page = await response.json()
        videos.update((video["name"], video) for video in page["videos"])
        cursor = page.get("next")
        if not cursor:
            return videos


async def read_whole(url: str, route: str, name: str) -> str:
    """sha256 of the whole part, or what went wrong."""
    status, _, body, after = await raw_get(url, f"/{route}/{urllib.parse.quote(name)}", auth_headers(url))
    return hashlib.sha256(body).hexdigest() if status == 200 and not after else f"status {status}"


async def final_checks(url: str, ledger: Ledger, copies: collections.Counter) -> None:
    async with aiohttp.ClientSession(headers=auth_headers(url)) as session:
        videos = await listed(session, url)
        for name in ledger.deleted:
            if name in videos:
                ledger.violation(f"{name}: deleted, yet listed again")
        unknown = {n for n in videos if n in ledger.attempted and n not in ledger.acknowledged}
        for name in [*ledger.live(), *sorted(unknown)]:
            source = ledger.attempted[name]
            if name not in videos:
                ledger.violation(f"{name}: acknowledged, not listed")
                continue
            if name in unknown and copies[source.sha256] < REPLICATION:
                ledger.violation(
                    f"{name}: listed (its upload never answered), {copies[source.sha256]} copies"
                )
            for route in ("original", "stream"):
                got = await read_whole(url, route, name)
                if got != source.sha256:
                    ledger.violation(f"{name}: /{route} gives {got}, not the uploaded bytes")
            if name in ledger.titles and videos[name]["title"] not in ledger.titles[name]:
                ledger.violation(f"{name}: title {videos[name]['title']!r}, never given")
        ledger.counts["final: acknowledged and checked"] = len(ledger.live())
        ledger.counts["final: unanswered uploads that exist, checked"] = len(unknown)


async def resolve_unknown_deletes(url: str, ledger: Ledger) -> None:
    """A delete that got no answer did happen or did not: the video's record says which."""
    async with aiohttp.ClientSession(headers=auth_headers(url)) as session:
        for name in sorted(ledger.delete_tried - ledger.deleted):
            async with session.get(f"{url}/videos/{urllib.parse.quote(name)}") as response:
                if response.status == 404:
                    ledger.deleted.add(name)
        ledger.delete_tried.clear()


# --- main -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long faults are injected")
    parser.add_argument("--seed", type=int, default=1, help="seeds the faults and the clients' choices")
    parser.add_argument("--datanodes", type=int, default=4, help="datanodes (replication is 3)")
    parser.add_argument("--settle-s", type=float, default=180.0, help="time allowed to converge after")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder (logs) afterwards")
    return parser.parse_args()


def start_cluster(root: Path, datanodes: int) -> BenchCluster:
    return BenchCluster(
        root,
        datanodes,
        datanode_args=["--heartbeat", "0.3"],
        master_args=["--heartbeat", "0.3", "--dead-after", "3", "--upload-expiry", str(UPLOAD_EXPIRY_S)],
    ).start()


async def chaos(args: argparse.Namespace, root: Path) -> Ledger:
    rng, ledger = random.Random(args.seed), Ledger()
    cluster = start_cluster(root / "cluster", args.datanodes)
    try:
        url = require_loopback(cluster.url)
        print(f"cluster up at {url}; faults for {args.seconds:g}s, seed {args.seed}", flush=True)
        (root / "sources").mkdir()
        clients = Clients(url, root / "sources", ledger, args.seed)
        working = asyncio.create_task(clients.run(random.Random(rng.random())))
        await Faults(cluster, ledger, random.Random(rng.random())).run(args.seconds)
        clients.stop.set()
        try:
            async with asyncio.timeout(4 * REQUEST_BOUND_S):
                await working
        except TimeoutError:
            ledger.violation("the clients did not finish their last requests")
        print("faults over, clients stopped; settling ...", flush=True)
        await resolve_unknown_deletes(url, ledger)
        copies = await settle(cluster, ledger, args.settle_s)
        await final_checks(url, ledger, copies)
    finally:
        for node in cluster.datanodes:
            node.resume()  # a frozen process cannot act on SIGTERM
        cluster.stop()
    return ledger


def report(ledger: Ledger) -> None:
    print(f"\n{len(ledger.faults)} faults:")
    for line in ledger.faults:
        print(f"  {line}")
    print("\noutcomes:")
    for what, count in sorted(ledger.counts.items()):
        print(f"  {count:6d}  {what}")
    print(
        f"\nuploads: {len(ledger.attempted)} tried, {len(ledger.acknowledged)} acknowledged, "
        f"{len(ledger.deleted)} deleted"
    )
    print(f"violations: {len(ledger.violations)}")
    for line in ledger.violations:
        print(f"  {line}")


def main() -> int:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the cluster on kill too
    if args.keep:
        root = Path(tempfile.mkdtemp(prefix="myyoutube-chaos-"))
        print(f"keeping {root}", flush=True)
        ledger = asyncio.run(chaos(args, root))
    else:
        with tempfile.TemporaryDirectory(prefix="myyoutube-chaos-") as tmp:
            ledger = asyncio.run(chaos(args, Path(tmp)))
    report(ledger)
    return 1 if ledger.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
