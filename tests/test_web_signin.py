"""Pure tests of web/signin.py's decisions: where a sign-in may send the browser next."""

from __future__ import annotations

import pytest

from myyoutube.web.signin import local_path


@pytest.mark.parametrize(
    "target",
    ["/", "/watch/cat.mp4", "/watch/a%2Fb.mp4?t=3", "/status", "/?q=caf%C3%A9"],
)
def test_paths_on_this_site_are_kept(target):
    """After signing in, the visitor goes back to the page of this site they came from."""
    assert local_path(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil.example",
        "",
        # Browsers drop tabs and line breaks from a URL before resolving it: these are
        # //evil.example to them (a link /login?next=/%09/evil.example sent people there).
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/\r\n/evil.example",
        "/\x00/evil.example",
        "/\x7f/evil.example",
    ],
)
def test_targets_that_leave_the_site_go_home(target):
    """A crafted sign-in link cannot send the visitor to another site after they sign in."""
    assert local_path(target) == "/"
