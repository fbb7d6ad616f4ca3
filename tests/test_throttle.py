"""Pure tests of myyoutube.web.throttle: exponential backoff per key, with time passed in."""

from __future__ import annotations

import pytest

from myyoutube.web.throttle import KnownClients, PasswordGuesses, Throttle, TooSoon


def test_free_failures_then_doubling_waits_up_to_the_cap():
    """After the free failures, each failure doubles the wait, up to max_delay_s."""
    throttle = Throttle(free_failures=3, base_delay_s=1.0, max_delay_s=8.0)
    now = 1000.0
    waits = []
    for _ in range(8):
        throttle.failed("ip:1", now)
        waits.append(throttle.wait_s("ip:1", now))
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]
    assert throttle.wait_s("ip:1", now + 8) == 0  # the wait runs out


def test_success_clears_and_keys_are_separate():
    """A success forgets the key's failures; other keys are untouched."""
    throttle = Throttle(free_failures=0, base_delay_s=1.0)
    throttle.failed("user:olga", 0.0)
    throttle.failed("user:vera", 0.0)
    throttle.succeeded("user:olga")
    assert throttle.wait_s("user:olga", 0.0) == 0 and throttle.wait_s("user:vera", 0.0) == 1


def test_quiet_keys_start_afresh():
    """A key with no failure for forget_after_s has a clean slate."""
    throttle = Throttle(free_failures=0, base_delay_s=1.0, forget_after_s=100.0)
    for _ in range(5):
        throttle.failed("k", 0.0)
    assert throttle.wait_s("k", 10.0) > 0
    throttle.failed("k", 200.0)
    assert throttle.wait_s("k", 200.0) == 1


def test_memory_is_bounded():
    """At most max_keys are kept; the least recently failed go first."""
    throttle = Throttle(free_failures=0, max_keys=3)
    for key in "abcd":
        throttle.failed(key, 0.0)
    assert throttle.wait_s("a", 0.0) == 0 and throttle.wait_s("d", 0.0) > 0


def test_a_failure_taken_back_lifts_its_wait():
    """An attempt counted as failed when it began, then forgiven (it was not a wrong
    password), leaves the key as it was before the attempt."""
    throttle = Throttle(free_failures=1, base_delay_s=1.0)
    throttle.failed("k", 0.0)
    throttle.failed("k", 0.0)
    assert throttle.wait_s("k", 0.0) == 1
    throttle.forgive("k")
    assert throttle.wait_s("k", 0.0) == 0
    throttle.forgive("k")
    throttle.failed("k", 0.0)  # the key was forgotten: this is its first failure again
    assert throttle.wait_s("k", 0.0) == 0


def test_known_clients_are_the_recent_addresses_of_each_account():
    """An address an account signed in from is known for that account only, until
    known_for_s has passed; each account keeps its per_account most recent addresses."""
    known = KnownClients(per_account=2, known_for_s=100.0)
    known.signed_in("olga", "10.0.0.1", 0.0)
    assert known.knows("olga", "10.0.0.1", 99.0) and not known.knows("olga", "10.0.0.1", 100.0)
    assert not known.knows("vera", "10.0.0.1", 1.0) and not known.knows("olga", "10.0.0.2", 1.0)
    known.signed_in("olga", "10.0.0.2", 1.0)
    known.signed_in("olga", "10.0.0.3", 2.0)
    assert not known.knows("olga", "10.0.0.1", 3.0)  # the oldest of three went
    assert known.knows("olga", "10.0.0.2", 3.0) and known.knows("olga", "10.0.0.3", 3.0)


def test_known_clients_memory_is_bounded():
    """At most max_accounts accounts are remembered, the one seen longest ago dropped first."""
    known = KnownClients(max_accounts=2)
    for account in ("a", "b", "c"):
        known.signed_in(account, "10.0.0.1", 0.0)
    assert not known.knows("a", "10.0.0.1", 0.0) and known.knows("c", "10.0.0.1", 0.0)


def test_password_guesses_count_before_the_answer_and_share_one_budget():
    """Each guess counts as failed when it begins, so past the account's free failures the
    next is TooSoon whatever it holds; a check that was no guess is taken back; the right
    password clears the account and makes its address known, from where it is then held
    by the address's key only."""
    guesses = PasswordGuesses(account=Throttle(free_failures=2, base_delay_s=10.0))
    for _ in range(2):
        guesses.begin("pat", "1.1.1.1", 0.0)  # wrong: nothing more to do
    guesses.not_a_guess(guesses.begin("pat", "1.1.1.1", 0.0))  # the master never answered
    guesses.begin("pat", "1.1.1.1", 0.0)
    with pytest.raises(TooSoon) as wait:
        guesses.begin("pat", "2.2.2.2", 1.0)
    assert wait.value.retry_after_s == 10
    guess = guesses.begin("pat", "2.2.2.2", 11.0)
    guesses.right(guess, 11.0)
    assert guesses.account.wait_s("pat", 11.0) == 0 and guesses.known.knows("pat", "2.2.2.2", 11.0)
    for _ in range(3):
        guesses.begin("pat", "3.3.3.3", 12.0)
    with pytest.raises(TooSoon):
        guesses.begin("pat", "4.4.4.4", 12.0)
    guesses.right(guesses.begin("pat", "2.2.2.2", 12.0), 12.0)  # the owner, at home
    with pytest.raises(TooSoon):
        guesses.begin("pat", "4.4.4.4", 12.0)  # strangers' failures still count


def test_a_wait_of_one_second_is_said_in_the_singular():
    """A sign-in throttled for one second answered "try again in 1 seconds"."""
    assert str(TooSoon(1)) == "try again in 1 second" and str(TooSoon(2)) == "try again in 2 seconds"
