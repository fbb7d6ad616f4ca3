"""Sign-in throttling: exponential backoff per key (pure; time is passed in as `now`).

Theory of operation
-------------------
A password guesser is slowed down per client address and per account name, separately:
one address trying many accounts hits its address's limit, many addresses trying one
account hit the account's. Each key gets `free_failures` wrong passwords in a row at no
cost; after that, every further failure doubles the wait before the next attempt
(`base_delay_s`, 2x, 4x, ... up to `max_delay_s`). A success clears the key. A key left
alone for `forget_after_s` starts afresh, and at most `max_keys` keys are remembered (the
ones seen longest ago are dropped first), so memory stays bounded under a flood of
addresses.

The account key is the name as typed, whether or not such an account exists, so a
throttled answer does not tell which names are real.

An attempt is counted as a failure when it begins, before the password is checked
(signin.py), and taken back with `forgive` if it turns out not to be a wrong password.
Counted only once the answer came, a burst of guesses sent at the same moment would all
find the key's wait at 0 and all be checked: as many guesses as the client could open
connections, instead of the few free ones.

An account's key would also let anyone lock its owner out: a few wrong passwords every
quarter of an hour from anywhere, and account names are public (each video names its
owner). So `KnownClients` remembers the addresses each account signed in from lately
(KNOWN_ADDRESSES_PER_ACCOUNT of them, for KNOWN_FOR_S), and a sign-in from one of those is
held only by its address's key: the owner at home still gets in while a stranger's
guesses keep the account throttled for everyone else.

`PasswordGuesses` puts these together around every check of a password a client typed,
whatever the route: signing in, and changing one's own password (which takes the current
one), share one budget, so a stolen session cannot guess the password faster through the
second than anyone could through the first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from myyoutube.formatting import counted

# Defaults: five wrong passwords are a typo streak; past them, 1 s, 2 s, 4 s... up to
# 15 minutes between attempts (online guessing at ~100 tries a day per key).
FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 900.0
# A key quiet for a day starts afresh.
FORGET_AFTER_S = 24 * 3600.0
# Memory bound: ~200 bytes a key.
MAX_KEYS = 100_000
# Per client address: a household or office shares one, so it gets more free failures
# than one account does.
ADDRESS_FREE_FAILURES = 20


@dataclass
class _Record:
    failures: int
    last_failure: float
    blocked_until: float


class Throttle:
    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        forget_after_s: float = FORGET_AFTER_S,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.forget_after_s, self.max_keys = forget_after_s, max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait_s(self, key: str, now: float) -> float:
        """Seconds before `key` may try again (0: now)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now - record.last_failure >= self.forget_after_s:
            del self._records[key]
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, key: str, now: float) -> None:
        record = self._records.pop(key, None)
        if record is None or now - record.last_failure >= self.forget_after_s:
            record = _Record(0, now, now)
        record.failures += 1
        record.last_failure = now
        record.blocked_until = self._blocked_until(record)
        self._records[key] = record  # most recently failed last
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def forgive(self, key: str) -> None:
        """Take back one failure, counted for an attempt that proved not to be a wrong
        password (the right one, or an answer that never came)."""
        record = self._records.get(key)
        if record is None:
            return
        record.failures -= 1
        if record.failures <= 0:
            del self._records[key]
        else:
            record.blocked_until = self._blocked_until(record)

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def _blocked_until(self, record: _Record) -> float:
        excess = record.failures - self.free_failures
        if excess <= 0:
            return record.last_failure
        return record.last_failure + min(self.max_delay_s, self.base_delay_s * 2 ** min(excess - 1, 60))


# Addresses remembered per account: a home, a phone's network, an office...
KNOWN_ADDRESSES_PER_ACCOUNT = 8
# How long a successful sign-in keeps its address known: about a session's lifetime.
KNOWN_FOR_S = 30 * 24 * 3600.0


class KnownClients:
    """The addresses each account signed in from within `known_for_s` (at most
    `per_account` each, the most recent; at most `max_accounts` accounts, the ones seen
    longest ago dropped first)."""

    def __init__(
        self,
        per_account: int = KNOWN_ADDRESSES_PER_ACCOUNT,
        known_for_s: float = KNOWN_FOR_S,
        max_accounts: int = MAX_KEYS,
    ) -> None:
        self.per_account, self.known_for_s, self.max_accounts = per_account, known_for_s, max_accounts
        self._seen: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()  # account -> address -> when

    def knows(self, account: str, address: str, now: float) -> bool:
        addresses = self._seen.get(account)
        seen_at = addresses.get(address) if addresses is not None else None
        return seen_at is not None and now - seen_at < self.known_for_s

    def signed_in(self, account: str, address: str, now: float) -> None:
        addresses = self._seen.pop(account, OrderedDict())
        addresses.pop(address, None)
        addresses[address] = now  # most recent last
        while len(addresses) > self.per_account:
            addresses.popitem(last=False)
        self._seen[account] = addresses
        while len(self._seen) > self.max_accounts:
            self._seen.popitem(last=False)


class TooSoon(Exception):
    """A password may not be tried yet from here, for this account: wait `retry_after_s`."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"try again in {counted(retry_after_s, 'second')}")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Guess:
    """One check of a typed password under way, already counted as a failure for its
    account and address; `held_by_account` if the account's throttle holds it too (the
    address is not one the account signed in from lately)."""

    account: str
    address: str
    held_by_account: bool


@dataclass
class PasswordGuesses:
    """The bracket around every check of a typed password: `begin` (TooSoon, or the
    attempt counted as failed), then `right` or `not_a_guess`; a wrong password needs
    nothing more, its failure is already counted."""

    address: Throttle = field(default_factory=lambda: Throttle(free_failures=ADDRESS_FREE_FAILURES))
    account: Throttle = field(default_factory=Throttle)
    known: KnownClients = field(default_factory=KnownClients)

    def begin(self, account: str, address: str, now: float) -> Guess:
        held_by_account = not self.known.knows(account, address, now)
        wait_s = self.address.wait_s(address, now)
        if held_by_account:
            wait_s = max(wait_s, self.account.wait_s(account, now))
        if wait_s > 0:
            raise TooSoon(int(wait_s) + 1)
        # Counted as failed before the password is checked: see the module's docstring.
        self.address.failed(address, now)
        self.account.failed(account, now)
        return Guess(account, address, held_by_account)

    def not_a_guess(self, guess: Guess) -> None:
        """The check never answered, or refused for another reason than the password."""
        self.address.forgive(guess.address)
        self.account.forgive(guess.account)

    def right(self, guess: Guess, now: float) -> None:
        """The password was right: the account's failures are cleared, unless a known
        address was held by its own key only (strangers' failures keep counting for the
        others), and the address becomes one the account is known at."""
        if guess.held_by_account:
            self.account.succeeded(guess.account)
        else:
            self.account.forgive(guess.account)
        self.address.forgive(guess.address)
        self.known.signed_in(guess.account, guess.address, now)
