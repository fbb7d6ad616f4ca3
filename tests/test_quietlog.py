"""Rate-limited log lines (myyoutube.quietlog): pure decisions and the logger wrapper."""

from __future__ import annotations

import logging

from myyoutube.quietlog import LogLimiter, QuietLog


def test_log_limiter_says_once_per_period_with_the_count():
    """Repeated events make one log line per period, carrying how many there were."""
    limiter = LogLimiter(every_s=10)
    assert limiter.check("flood", 0.0) == 1
    assert [limiter.check("flood", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert limiter.check("flood", 10.5) == 4
    assert limiter.check("other", 10.6) == 1


def test_log_limiter_forgets_the_oldest_kind_past_its_bound():
    """A flood of distinct keys keeps memory bounded: the kind logged longest ago is
    forgotten (and would be logged afresh)."""
    limiter = LogLimiter(every_s=10, max_keys=2)
    for key in ("a", "b", "c"):
        assert limiter.check(key, 0.0) == 1
    assert limiter.check("c", 1.0) is None  # remembered: quiet
    assert limiter.check("a", 1.0) == 1  # forgotten: logged again


def test_quiet_log_writes_the_first_line_and_counts_the_rest(caplog):
    """Lines of one template are logged once per period whatever their arguments; a line
    after the period says how many were held back; another template is not held back."""
    quiet = QuietLog(logging.getLogger("test.quietlog"), every_s=3600)
    with caplog.at_level(logging.WARNING, "test.quietlog"):
        for address in range(100):
            quiet.warning("master unreachable from %s", address)
        quiet.warning("another kind of trouble")
    assert [r.getMessage() for r in caplog.records] == [
        "master unreachable from 0",
        "another kind of trouble",
    ]
    quiet.limiter.every_s = 0  # the period is over
    with caplog.at_level(logging.WARNING, "test.quietlog"):
        quiet.warning("master unreachable from %s", "again")
    assert caplog.records[-1].getMessage() == (
        "master unreachable from again (and 99 more like it since the last such line)"
    )
