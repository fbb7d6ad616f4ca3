"""`myyoutube status`, `admin purge-orphans` and `admin backup`: what an operator asks of a cluster.

Theory of operation
-------------------
Like every other subcommand these talk HTTP to the web front end through `webclient.Api`.
`status` prints /api/status as a table of datanodes followed by one line per concern
(totals, counters, the transcode queue, under-replicated videos, orphaned blobs); with
`--json` it prints the server's answer as it came. `admin purge-orphans` has the
datanodes delete the blobs the master's index does not know, and `admin backup FILE`
saves a consistent copy of the index (the file handling is in backups.py). `register`
adds them to the parser that commandline.py builds.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path
from typing import Any

from myyoutube import backups
from myyoutube.formatting import counted, human_size
from myyoutube.terminal import EXIT_OK, report, say, say_json, size_text, table
from myyoutube.webclient import Api


def _heartbeat_text(seconds_ago: Any) -> str:
    return "never" if seconds_ago is None else f"{seconds_ago:.1f} s ago"


def transcoding_line(summary: dict, dead: Collection[str] = ()) -> str:
    """The transcode queue as /api/status gives it, in one line: jobs by state and the
    slots of the datanodes that transcode, but for the `dead` ones (their slots are kept
    as their last heartbeat said, and were counted as if they could take jobs)."""
    counts = summary.get("jobs") or {}
    slots = {
        node: n
        for node, n in (summary.get("slots") or {}).items()
        if isinstance(n, int) and n > 0 and node not in dead
    }
    jobs = ", ".join(f"{counts.get(state, 0)} {state}" for state in ("queued", "running", "failed"))
    nodes = f"{counted(sum(slots.values()), 'slot')} on {counted(len(slots), 'datanode')}"
    return f"transcoding: {jobs}; {nodes}"


def orphans_line(count: int) -> str:
    """What `count` blobs the index does not know may be, and the two ways out. Right after
    a restore they are the videos stored since its backup: the line used to say only
    "restore the master's index, or purge-orphans if they are garbage", and an operator who
    had just restored could take them for garbage and delete them for good."""
    return (
        f"orphaned blobs: {count} (kept: blobs this index does not know, such as videos stored "
        "after the backup it was restored from; --recover on an empty master folder brings "
        "those back, `myyoutube admin purge-orphans` deletes them for good)"
    )


async def cmd_status(api: Api, args: argparse.Namespace) -> int:
    status = await api.json("/api/status", keys=("datanodes",))
    if args.json:
        say_json(status)
        return EXIT_OK
    rows = [
        (
            str(node["address"]),
            str(node["state"]),
            _heartbeat_text(node.get("last_heartbeat_s_ago")),
            size_text(node.get("used_bytes")),
            size_text(node.get("free_bytes")),
            str(node.get("replicas", 0)),
        )
        for node in status.get("datanodes", [])
    ]
    table(("DATANODE", "STATE", "LAST HEARTBEAT", "USED", "FREE", "REPLICAS"), rows, right={2, 3, 4, 5})
    say(
        f"\nvideos: {status.get('videos', 0)}, stored: "
        f"{size_text(status.get('stored_bytes'))}, replication: "
        f"{status.get('replication', '?')}, repairs running: {status.get('repairs_running', 0)}"
    )
    counters = status.get("counters") or {}
    if counters:
        say("counters: " + ", ".join(f"{key} {value}" for key, value in counters.items()))
    transcoding = status.get("transcoding")
    if isinstance(transcoding, dict):
        dead = {node.get("address") for node in status.get("datanodes", []) if node.get("state") == "dead"}
        say(transcoding_line(transcoding, dead))
    under = status.get("under_replicated") or []
    say("under-replicated: " + ("none" if not under else f"{len(under)}"))
    if status.get("orphaned_blobs"):
        say(orphans_line(status["orphaned_blobs"]))
    for video in under:
        repairing = " (repairing)" if video.get("repairing") else ""
        say(
            f"  {video['name']}: {video['live_replicas']} live of {status.get('replication', '?')}{repairing}"
        )
    return EXIT_OK


async def cmd_purge_orphans(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/admin/purge-orphans", method="POST", keys=("purged",))
    return report(
        args,
        answer,
        f"purged {answer['purged']} orphaned blobs; datanodes delete them at their next heartbeat",
    )


async def cmd_backup(api: Api, args: argparse.Namespace) -> int:
    saved = await backups.save_backup(api, args.file, args.force)
    return report(
        args,
        saved,
        f"saved the index to {args.file} ({human_size(saved['size'])}, sha256 {saved['sha256']}); "
        f"`myyoutube-master --restore {args.file}` (or `myyoutube-cluster --restore {args.file}`) "
        "starts a master from it",
    )


def register(commands, add, common: argparse.ArgumentParser) -> None:
    """Add status and admin purge-orphans|backup to the `myyoutube` parser."""
    add("status", cmd_status, "datanodes, replication health, counters")
    admin = commands.add_parser("admin", help="operator commands").add_subparsers(
        dest="admin_command", required=True, metavar="ADMIN_COMMAND"
    )
    admin.add_parser(
        "purge-orphans",
        parents=[common],
        help="delete blobs the datanodes hold that the master's index does not know "
        "(only once you are sure the index is the right one)",
    ).set_defaults(run=cmd_purge_orphans)
    saving = admin.add_parser(
        "backup",
        parents=[common],
        help="save a consistent copy of the master's index (accounts, videos, views) to FILE",
    )
    saving.add_argument("file", type=Path, metavar="FILE")
    saving.add_argument("--force", action="store_true", help="replace FILE if it exists")
    saving.set_defaults(run=cmd_backup)
