"""A video's words: its title and description, and how a person's search becomes a query.

Theory of operation
-------------------
A video's name is its unique key and stays in URLs; its *title* is what people read.
`default_title` turns a file name into a title ("holiday_2019-05.mp4" -> "holiday 2019
05"); `clean_title` and `clean_description` check what a person typed, refusing with a
sentence what cannot be shown (control characters, empty or overlong text). Text is
normalized to Unicode NFC, like names, so an accent typed on any system is one string.

Search runs on SQLite FTS5 with the `unicode61 remove_diacritics 2` tokenizer (letters
and digits make words; everything else, punctuation included, separates them; case and
accents are folded). `match_expression` turns what a person typed into an FTS5 query in
which every word is a quoted prefix token (`"word"*`), so FTS5's own syntax (`"`, `*`,
`NEAR`, `AND`, `-`, `(`, `:`) in the input is only ever text, never an operator, and never
a syntax error. A word holding punctuation ("holiday-005") stays one quoted phrase, so
it matches those words next to each other ("holiday 005" in a title, "holiday-005" in a
name).

`highlight_ranges` finds the words of a title that a search matched and returns them as
`[start, end]` offsets in UTF-16 code units, what JavaScript's `String.prototype.slice`
counts, so a page can wrap those ranges in `<mark>` elements with text nodes and never
parse HTML. It splits and folds words the way the tokenizer does (letters, digits and
private-use characters make words; case and accents are folded) in Python: FTS5's own
highlight() re-runs the whole search for each row, tens of milliseconds for a word in
many titles, while this costs microseconds. Only the display depends on it; which videos
match and in what order is FTS5's alone.
"""

from __future__ import annotations

import re
import unicodedata

# What a card shows on one or two lines; YouTube allows 100, PeerTube 120. 200 leaves room
# for long names made into titles.
MAX_TITLE_CHARS = 200

# A few paragraphs; PeerTube allows 10,000, YouTube 5,000.
MAX_DESCRIPTION_CHARS = 5000

# Words of a search beyond this many are ignored: each one is a prefix lookup and an
# intersection, and no title needs more to be found.
MAX_QUERY_WORDS = 16

# Separators a file name uses between words.
_NAME_SEPARATORS = re.compile(r"[_\-.\s]+")

# Control characters refused in any text: C0/C1 controls and lone surrogates (which a
# JSON "\ud800" escape can produce and which no encoder can write back).
_REFUSED_CATEGORIES = ("Cc", "Cs")

# In a description, line breaks and tabs are how paragraphs and lists are written.
_DESCRIPTION_WHITESPACE = "\n\t"

# Line and paragraph separators break a one-line title as surely as a newline.
_TITLE_REFUSED_CATEGORIES = (*_REFUSED_CATEGORIES, "Zl", "Zp")

# The bidirectional overrides (LRO, RLO) make the characters after them show in forced
# order: "\u202egnp.exe" reads "exe.png". No language needs them (direction marks,
# embeddings and isolates, which right-to-left and mixed text use, stay allowed), and a
# page shows them to strangers, so titles and descriptions refuse them.
_OVERRIDES = "\u202d\u202e"


# Letters and symbols that print as blank space, which a title of nothing else would
# show as empty (Hangul fillers, the braille blank): the usual way around "non-empty".
_BLANK_GLYPHS = frozenset("\u115f\u1160\u2800\u3164\uffa0")

# Categories of characters that show nothing by themselves: format characters (zero
# width space, joiners, the byte order mark), separators, and marks with no base.
_SHOWS_NOTHING_ALONE = ("Cf", "Zs", "Mn", "Me")


class BadText(ValueError):
    """A title or description that cannot be stored; str(exc) says why, for the user."""


def default_title(name: str) -> str:
    """The title a video gets from its file name: no extension, separators as spaces."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    title = _NAME_SEPARATORS.sub(" ", stem).strip()
    return (title or name)[:MAX_TITLE_CHARS]


def clean_title(raw: str) -> str:
    """The title as stored: NFC, trimmed, 1 to MAX_TITLE_CHARS characters, one line."""
    title = unicodedata.normalize("NFC", raw).strip()
    if not title:
        raise BadText("The title is empty; give the video a title.")
    if len(title) > MAX_TITLE_CHARS:
        raise BadText(f"The title is longer than {MAX_TITLE_CHARS} characters; shorten it.")
    if any(unicodedata.category(char) in _TITLE_REFUSED_CATEGORIES for char in title):
        raise BadText("The title contains line breaks or control characters; remove them.")
    if all(char in _BLANK_GLYPHS or unicodedata.category(char) in _SHOWS_NOTHING_ALONE for char in title):
        raise BadText("The title shows nothing (only invisible or blank characters); give the video a title.")
    _refuse_overrides(title, "title")
    return title


def clean_description(raw: str) -> str:
    """The description as stored: NFC, trimmed, line breaks kept, at most
    MAX_DESCRIPTION_CHARS characters ('' for none)."""
    description = unicodedata.normalize("NFC", raw.replace("\r\n", "\n")).strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise BadText(f"The description is longer than {MAX_DESCRIPTION_CHARS} characters; shorten it.")
    if any(
        unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _DESCRIPTION_WHITESPACE
        for char in description
    ):
        raise BadText("The description contains control characters; remove them.")
    _refuse_overrides(description, "description")
    return description


def _refuse_overrides(text: str, what: str) -> None:
    """BadText if `text` (a title or description, `what`) holds a bidirectional override."""
    if any(char in _OVERRIDES for char in text):
        raise BadText(f"The {what} contains characters that reverse the text after them; remove them.")


def match_expression(text: str) -> str:
    """The FTS5 query for what a person typed: every word a quoted prefix token, all of
    them required. '' when the text holds no letters or digits (it can match nothing)."""
    # Control characters and lone surrogates separate words, as the tokenizer would; left
    # in, a NUL would end the query early for SQLite's C parser.
    readable = "".join(" " if unicodedata.category(char) in _REFUSED_CATEGORIES else char for char in text)
    words = []
    for word in unicodedata.normalize("NFC", readable).split():
        if not any(char.isalnum() for char in word):
            continue  # only punctuation: the tokenizer would make no token of it
        # Inside FTS5 quotes the only special character is the quote, doubled to escape.
        words.append('"' + word.replace('"', '""') + '"*')
        if len(words) == MAX_QUERY_WORDS:
            break
    return " ".join(words)


def highlight_ranges(title: str, text: str) -> list[list[int]]:
    """[[start, end], ...] of the words of `title` that begin with a word of the search
    `text` (case and accents folded), in UTF-16 code units of `title`."""
    searched = {_fold(word) for word in _words(text)}
    if not searched:
        return []
    units = [2 if ord(char) > 0xFFFF else 1 for char in title]
    ranges = []
    for start, end in _word_spans(title):
        if any(_fold(title[start:end]).startswith(word) for word in searched):
            ranges.append([sum(units[:start]), sum(units[:end])])
    return ranges


def _is_word_char(char: str) -> bool:
    """unicode61's default token characters: letters, numbers, private use."""
    category = unicodedata.category(char)
    return category[0] in "LN" or category == "Co"


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], None
    for position, char in enumerate(text):
        if _is_word_char(char):
            if start is None:
                start = position
        elif start is not None:
            spans.append((start, position))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _words(text: str) -> list[str]:
    return [text[start:end] for start, end in _word_spans(unicodedata.normalize("NFC", text))]


def _fold(word: str) -> str:
    """Case and accents folded: "Écoles" -> "ecoles" (remove_diacritics 2 also strips
    accents stacked on one letter)."""
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
