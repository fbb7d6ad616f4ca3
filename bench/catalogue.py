"""The catalogue at 100,000 videos: page and search latency over HTTP, master memory.

Usage: python bench/catalogue.py [--videos 100000] [--requests 200] [--seed 1]

Theory of operation
-------------------
A catalogue's cost grows with the number of videos, not with their bytes, so no video is
uploaded: the index is filled directly through the master's Index API (begin_blob and
commit_video per video, the calls an upload ends with, plus edits and views through the
catalogue), then a real master and web front end are started on it as separate OS
processes (benchlib's way) and measured from outside over HTTP, as the home page and the
command-line client use them.

1. Fill: --videos videos named like uploads ("word-word-000123.mp4"), titled with 3 to 6
   words drawn from a vocabulary with a Zipf-like skew, one in five with a description;
   upload times a minute apart, durations up to an hour, a few views each. Two marker
   words measure search: COMMON_WORD in COMMON_SHARE of the titles, RARE_WORD in
   RARE_COUNT of them. The fill turns off the index's per-transaction fsync (what it
   measures is reading, not the fill's durability) and reports how long it took.
2. Start the master on that index (its start-up, which loads every record, is timed) and
   a web front end; no datanodes: listing and search never touch one. The replicas the
   index records live on datanodes that never register, as after a full power cut.
3. For each row of the table, --requests sequential requests on one keep-alive
   connection after WARMUP_REQUESTS unmeasured ones; p50 and p99 of the wall time from
   request to parsed JSON. The deep cursor is reached by walking half-way into the
   order (DEEP_FRACTION), 200 videos at a time.
4. Master RSS now and at peak (VmRSS, VmHWM), the web's, the index file's size, and the
   master's CPU while idle (its repair planner scans every blob each tick).

Targets (issue 11): a list page p99 < 20 ms, a search p99 < 50 ms at 100,000 videos.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchlib import (
    MIB,
    CpuMeter,
    peak_rss_bytes,
    percentile_ms,
    print_table,
    run_context,
)
from myyoutube.launch import Role, start_role
from myyoutube.listing import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from myyoutube.master.index import Index, StoredBlob

# The marker words: one in a tenth of the titles (a "common" search such as "holiday"),
# one in only a few.
COMMON_WORD, COMMON_SHARE = "holiday", 0.10
RARE_WORD, RARE_COUNT = "zanzibar", 3

# A word in half of the titles: the worst case the ranking horizon exists for.
VERY_COMMON_WORD, VERY_COMMON_SHARE = "video", 0.5

# Words the titles are made of; drawn with a Zipf-like skew so some are frequent.
VOCABULARY_WORDS = 5000

# Requests sent before measuring (connections opened, caches warm).
WARMUP_REQUESTS = 10

# The "deep" page starts half-way into the order (50,000 videos in at 100,000).
DEEP_FRACTION = 0.5

# Addresses of datanodes that never start: where the index says the replicas are.
ABSENT_DATANODES = ["127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11"]

# How long the idle master's CPU is sampled.
IDLE_SAMPLE_S = 5.0


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {
        "".join(rng.choice(letters) for _ in range(rng.randrange(3, 10))) for _ in range(VOCABULARY_WORDS)
    }
    return sorted(words - {COMMON_WORD, RARE_WORD, VERY_COMMON_WORD})


def fill(path: Path, count: int, rng: random.Random) -> float:
    """Commit `count` videos through the Index API; seconds taken."""
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rare = set(rng.sample(range(count), RARE_COUNT))
    started = time.perf_counter()
    index = Index(path, time.time())
    index._db.execute("PRAGMA synchronous=OFF")  # the fill's durability is not measured
    for number in range(count):
        title_words = rng.choices(words, weights, k=rng.randrange(3, 7))
        if rng.random() < COMMON_SHARE:
            title_words.insert(rng.randrange(len(title_words)), COMMON_WORD)
        if rng.random() < VERY_COMMON_SHARE:
            title_words.append(VERY_COMMON_WORD)
        if number in rare:
            title_words.insert(0, RARE_WORD)
        name = f"{title_words[0]}-{title_words[-1]}-{number:06d}.mp4"
        blob_id = f"{number:032x}"
        index.ownership.begin_blob(blob_id, time.time())
        video = {
            "name": name,
            "blob_id": blob_id,
            "size": rng.randrange(1_000_000, 500_000_000),
            "sha256": "0" * 64,
            "content_type": "video/mp4",
            "uploaded_at": 1_700_000_000.0 + 60 * number,
            "duration_s": round(rng.uniform(5, 3600), 2),
            "width": 1280,
            "height": 720,
            "codec": "h264",
            "title": " ".join(title_words).capitalize(),
        }
        if rng.random() < 0.2:
            video["description"] = " ".join(rng.choices(words, weights, k=rng.randrange(5, 40)))
        stored = StoredBlob(blob_id, video["size"], video["sha256"], ABSENT_DATANODES)
        index.commit_video(video, [stored], time.time())
        for _ in range(int(rng.expovariate(0.2))):
            index.catalogue.add_view(name)
    index.close()  # flushes the views
    return time.perf_counter() - started


@dataclass(frozen=True)
class Case:
    """One page request: the search text ('' for a listing), sort, cursor and size."""

    label: str
    query: str = ""
    sort: str = ""
    cursor: str = ""
    limit: int = DEFAULT_PAGE_LIMIT

    def http(self) -> tuple[str, dict[str, str]]:
        """The request's path and query parameters."""
        params = {"q": self.query, "sort": self.sort, "cursor": self.cursor, "limit": str(self.limit)}
        return ("/search" if self.query else "/listar"), {k: v for k, v in params.items() if v}


def cursor_at(index: Index, sort: str, rows: int) -> str:
    """The cursor `rows` videos into `sort`, walked 200 at a time (cursors are opaque but
    made by the same code on the same index, so the web front end takes them too)."""
    cursor = ""
    for _ in range(rows // MAX_PAGE_LIMIT):
        cursor = index.catalogue.page("", sort, cursor, MAX_PAGE_LIMIT).next
    return cursor


def cases(index: Index, videos: int) -> list[Case]:
    deep = int(videos * DEEP_FRACTION)
    return [
        Case("list, first page (newest)"),
        Case(f"list, page at {deep:,} (newest)", cursor=cursor_at(index, "newest", deep)),
        Case("list, first page, sort=title", sort="title"),
        Case(f"list, page at {deep:,}, sort=title", sort="title", cursor=cursor_at(index, "title", deep)),
        Case("list, first page, sort=views", sort="views"),
        Case("list, first page, sort=duration", sort="duration"),
        Case(f"list, limit={MAX_PAGE_LIMIT}", limit=MAX_PAGE_LIMIT),
        Case(f"search common word ({COMMON_SHARE:.0%})", query=COMMON_WORD),
        Case(f"search very common word ({VERY_COMMON_SHARE:.0%})", query=VERY_COMMON_WORD),
        Case(f"search rare word ({RARE_COUNT} videos)", query=RARE_WORD),
        Case("search 2-letter prefix 'ho'", query="ho"),
        Case("search two words, sort=newest", query=f"{COMMON_WORD} {VERY_COMMON_WORD}", sort="newest"),
    ]


def figures(label: str, found: int, times: list[float]) -> list[object]:
    """A table row: what was asked, how many videos came back, p50, p99 and max in ms."""
    quantiles = (percentile_ms(times, 0.5), percentile_ms(times, 0.99), 1000 * max(times))
    return [label, found, *(f"{value:.1f}" for value in quantiles)]


def measure_in_process(index: Index, all_cases: list[Case], requests: int) -> list[list[object]]:
    """Catalogue.page itself: SQLite and the records, no event loop, protocol or HTTP."""
    rows = []
    for case in all_cases:
        times = []
        for number in range(WARMUP_REQUESTS + requests):
            started = time.perf_counter()
            page = index.catalogue.page(case.query, case.sort, case.cursor, case.limit)
            if number >= WARMUP_REQUESTS:
                times.append(time.perf_counter() - started)
        rows.append(figures(case.label, len(page.videos), times))
    return rows


async def measure_over_http(base: str, all_cases: list[Case], requests: int) -> list[list[object]]:
    """Each case as a client sees it: request to parsed JSON, one keep-alive connection."""
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for case in all_cases:
            path, params = case.http()
            times = []
            for number in range(WARMUP_REQUESTS + requests):
                started = time.perf_counter()
                async with session.get(base + path, params=params) as response:
                    page = await response.json()
                    if response.status != 200:
                        raise SystemExit(f"{path} {params}: {response.status} {page}")
                if number >= WARMUP_REQUESTS:
                    times.append(time.perf_counter() - started)
            rows.append(figures(case.label, len(page["videos"]), times))
    return rows


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per row")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# bench/catalogue.py, {run_context()}")
    with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as folder:
        root = Path(folder)
        (root / "master").mkdir()
        index_path = root / "master" / "index.sqlite3"
        fill_s = fill(index_path, args.videos, random.Random(args.seed))
        print(f"filled {args.videos:,} videos through the Index API in {fill_s:.1f} s")
        index = Index(index_path, time.time())
        all_cases = cases(index, args.videos)
        headers = ["request", "videos", "p50", "p99", "max"]
        print_table(
            f"Catalogue.page in this process (SQLite + records), {args.requests} calls each (ms)",
            headers,
            measure_in_process(index, all_cases, args.requests),
        )
        index.close()
        with running_roles(root) as (master, web, start_s):
            print_table(
                f"Over HTTP (web -> master -> SQLite), {args.requests} sequential requests each (ms)",
                headers,
                asyncio.run(measure_over_http(f"http://{web.address}", all_cases, args.requests)),
            )
            idle = CpuMeter({"master": master.process.pid}).start()
            time.sleep(IDLE_SAMPLE_S)
            idle.stop()
            print_table(
                f"Master with {args.videos:,} videos",
                ["figure", "value"],
                [
                    ["start-up (load the index, announce)", f"{start_s:.1f} s"],
                    ["RSS now", f"{rss_bytes(master.process.pid) / MIB:.0f} MiB"],
                    ["RSS peak (VmHWM)", f"{peak_rss_bytes(master.process.pid) / MIB:.0f} MiB"],
                    ["web RSS peak", f"{peak_rss_bytes(web.process.pid) / MIB:.0f} MiB"],
                    ["index file", f"{index_path.stat().st_size / MIB:.0f} MiB"],
                    [
                        "idle CPU (repair planner ticks)",
                        f"{100 * idle.spent['master'] / idle.wall_s:.0f}% of a core",
                    ],
                ],
            )


@contextmanager
def running_roles(root: Path) -> Iterator[tuple[Role, Role, float]]:
    """A master on root/master (and the seconds it took to start) and a web front end."""
    roles: list[Role] = []
    try:
        started = time.perf_counter()
        master = start_role(
            "myyoutube.master", ["--port", "0", "--data-dir", str(root / "master")], root / "master.log"
        )
        roles.append(master)
        start_s = time.perf_counter() - started
        web = start_role("myyoutube.web", ["--master", master.address, "--port", "0"], root / "web.log")
        roles.append(web)
        yield master, web, start_s
    finally:
        for role in reversed(roles):
            role.stop()


if __name__ == "__main__":
    main()
