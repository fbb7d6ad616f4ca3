"""Repeated log lines, rate-limited: one line per kind of event per period, with a count.

Theory of operation
-------------------
A flood (a master down while every page asks it, strangers opening connections, slow
clients being cut off) would otherwise write one line per event: the issue that asked for
this saw 65,151 tracebacks (30 MB of log) in 20 s. Each line has a key, by default its
message template, so "master unreachable: A" and "master unreachable: B" are one kind.
The first event of a kind is logged at once; later ones within `every_s` are only
counted, and the next line that gets through says how many it stands for.

`LogLimiter` is the pure decision (time passed in as `now`); `QuietLog` wraps a
`logging.Logger` with it and reads the monotonic clock. Keys are bounded (MAX_KEYS): past
the bound the kind seen longest ago is forgotten, so a flood of distinct keys costs memory
no more than a flood of one.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

# One line per kind of event per this period: a person reading the log sees that
# something repeats, and how often, without the log growing with the flood.
LOG_EVERY_S = 10.0

# Kinds of event remembered at once (~200 bytes each).
MAX_KEYS = 1024


class LogLimiter:
    """Says whether to log a repeated event now: once per `every_s` per key, with the count
    of events since the last line."""

    def __init__(self, every_s: float = LOG_EVERY_S, max_keys: int = MAX_KEYS) -> None:
        self.every_s, self.max_keys = every_s, max_keys
        self._last: OrderedDict[str, float] = OrderedDict()
        self._suppressed: dict[str, int] = {}

    def check(self, key: str, now: float) -> int | None:
        """None to stay quiet, else how many events this line stands for."""
        count = self._suppressed.get(key, 0) + 1
        if now - self._last.get(key, float("-inf")) < self.every_s:
            self._suppressed[key] = count
            return None
        self._last.pop(key, None)
        self._last[key] = now  # most recently logged last
        self._suppressed[key] = 0
        while len(self._last) > self.max_keys:
            forgotten, _ = self._last.popitem(last=False)
            self._suppressed.pop(forgotten, None)
        return count


class QuietLog:
    """A logger whose lines are rate-limited per key (default: the message template)."""

    def __init__(self, logger: logging.Logger, every_s: float = LOG_EVERY_S) -> None:
        self.logger = logger
        self.limiter = LogLimiter(every_s)

    def log(
        self, level: int, message: str, *args: object, key: str | None = None, exc_info: bool = False
    ) -> None:
        """`message` % `args` at `level`, unless one of its kind was logged within the
        period; `exc_info` adds the exception being handled (its traceback)."""
        if not self.logger.isEnabledFor(level):
            return
        count = self.limiter.check(message if key is None else key, time.monotonic())
        if count is None:
            return
        if count > 1:
            message += " (and %d more like it since the last such line)"
            args = (*args, count - 1)
        self.logger.log(level, message, *args, exc_info=exc_info)

    def warning(self, message: str, *args: object, key: str | None = None) -> None:
        self.log(logging.WARNING, message, *args, key=key)

    def info(self, message: str, *args: object, key: str | None = None) -> None:
        self.log(logging.INFO, message, *args, key=key)
