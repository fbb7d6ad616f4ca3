"""Video names: what a user may call a video, made safe or refused with a reason.

Theory of operation
-------------------
A name arrives from an upload's file name, or as the name its uploader typed instead
(`chosen_name`: the same rules, but a separator is refused, not cut), and is shown back
in pages and URLs. It is never used as a path: datanodes name files by blob ids the
master assigns. Still, a name must be unambiguous and printable, so `clean_name` normalizes it to Unicode NFC (one name, one
video, whichever way the user's OS composed accents), drops any directory part a browser
or client sent, and refuses what cannot be made safe with a sentence a person understands.
"""

from __future__ import annotations

import unicodedata

# Most file systems cap a file name at 255 bytes; a name that could not be saved back to
# disk by a downloader would be a trap.
MAX_NAME_BYTES = 255


class BadName(ValueError):
    """The name cannot be used; str(exc) says why, for the user."""


def clean_name(raw: str) -> str:
    """Return the safe form of an uploaded file name, or raise BadName."""
    name = unicodedata.normalize("NFC", raw)
    # Browsers send only the base name, but other clients send full paths, with either
    # separator. Keep the last component: "C:\\videos\\cat.mp4" is the video "cat.mp4".
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise BadName("The file has no name; give it one (for example cat.mp4).")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in name):
        raise BadName("The file name contains control or invisible characters; rename it.")
    if name.startswith("."):
        raise BadName("The file name must not start with a dot; rename it.")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise BadName(f"The file name is longer than {MAX_NAME_BYTES} bytes; shorten it.")
    return name


def chosen_name(raw: str) -> str:
    """The safe form of a name the uploader typed (instead of the file's name), or
    BadName. A typed separator is refused rather than cut: the file name's directory part
    is a path to drop, but "Talks/2026" typed as a name would silently become "2026"."""
    if "/" in raw or "\\" in raw:
        raise BadName("A video's name cannot contain \u201c/\u201d or \u201c\\\u201d; choose another name.")
    return clean_name(raw)


def taken(name: str) -> str:
    """The sentence for an upload under a name that is already used."""
    return f"A video named \u201c{name}\u201d already exists; choose another name."


def being_uploaded(name: str) -> str:
    """The sentence for an upload under a name an upload in progress holds (a resumable
    one keeps it until it is finished, cancelled or expires), which no listing shows."""
    return (
        f"A video named \u201c{name}\u201d is being uploaded right now (an unfinished upload "
        "keeps its name until it ends or expires); choose another name."
    )


def looks_like(name: str, existing: str) -> str:
    """The sentence for an upload under a name a person could not tell from an existing one."""
    return (
        f"\u201c{name}\u201d looks just like the existing video \u201c{existing}\u201d; "
        "choose a name that cannot be mistaken for it."
    )


def looks_like_unseen(name: str) -> str:
    """The same, when the existing name is not the uploader's to see (someone else's
    private or unlisted video, or an upload in progress)."""
    return (
        f"\u201c{name}\u201d looks just like the name of another video or upload; "
        "choose a name that cannot be mistaken for it."
    )


def owner_only(act: str) -> str:
    """The sentence refusing `act` ("change", "delete") on a video to someone who is
    neither its owner nor an admin: the act asked for, named as asked."""
    return f"Only the video's owner or an admin may {act} it."


def unknown(name: str) -> str:
    """The sentence for a request about a video that does not exist."""
    return f"There is no video named \u201c{name[:MAX_NAME_BYTES]}\u201d."
