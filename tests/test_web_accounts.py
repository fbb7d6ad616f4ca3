"""Pure tests of the account page (web/accounts.py and templates/account.html): what it
shows, how its form reads to a keyboard and a screen reader, and the checks made on the
form before the master is asked. No sockets: the template renders through the very
environment the server uses."""

from __future__ import annotations

from html.parser import HTMLParser

from aiohttp import web

from myyoutube.permissions import User
from myyoutube.web import accounts, pages

TEMPLATES = pages.setup(web.Application())
VISITOR = pages.VisitorView(name="ann", role="uploader", csrf_token="c" * 64, can_upload=True)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.tags[attributes["id"]] = (tag, attributes)

    def handle_data(self, data):
        self.text.append(data)


def account_page(user: User, **options) -> tuple[str, _Tags]:
    html = TEMPLATES.get_template("account.html").render(accounts.account_context(user, VISITOR, **options))
    tags = _Tags()
    tags.feed(html)
    return html, tags


def test_storage_is_said_against_the_quota_or_its_absence():
    """Storage reads as used "of" quota with a percentage, "no quota" when unlimited."""
    assert accounts.storage_text(1536, 10 * 1024**3) == "1.5 KiB of 10.0 GiB (0%)"
    assert accounts.storage_text(3 * 1024**2, 4 * 1024**2) == "3.0 MiB of 4.0 MiB (75%)"
    assert accounts.storage_text(5 * 1024**2, 4 * 1024**2) == "5.0 MiB of 4.0 MiB (100%)"
    assert accounts.storage_text(0, None) == "0 B (no quota)"
    assert accounts.storage_text(0, 0) == "0 B of 0 B (it may store nothing)"


def test_a_viewers_page_shows_no_storage():
    """A viewer may not upload: no "Storage used" row (it said "0 B of 50.0 GiB", room the
    account does not have); an uploader's page has one."""
    html, tags = account_page(User("vic", "viewer", 50 * 1024**3, 0))
    assert "account-storage" not in tags.tags and "Storage used" not in html
    _, tags = account_page(User("ula", "uploader", 50 * 1024**3, 0))
    assert "account-storage" in tags.tags


def test_the_page_shows_the_account_and_a_labelled_password_form():
    """Name, role in words and storage are shown (escaped); the form posts with the
    session's CSRF token, every field has a label and the autocomplete a password
    manager needs, and the cursor starts nowhere in particular on a fresh page."""
    html, tags = account_page(User("ann<b>", "uploader", 4 * 1024**2, 1024**2))
    assert "ann&lt;b&gt;" in html and "ann<b>" not in html
    text = " ".join(tags.text)
    assert "Uploader" in text and "1.0 MiB of 4.0 MiB (25%)" in text
    assert tags.tags["password-form"][1]["action"] == "/account/password"
    assert 'name="csrf_token" value="' + "c" * 64 + '"' in html
    for field, autocomplete in (
        ("current-password", "current-password"),
        ("new-password", "new-password"),
        ("new-password-again", "new-password"),
    ):
        assert f'<label for="{field}">' in html
        assert (
            tags.tags[field][1]["autocomplete"] == autocomplete and tags.tags[field][1]["type"] == "password"
        )
    assert "password-status" not in tags.tags and "autofocus" not in html
    assert "style=" not in html and "<script>" not in html  # the CSP allows neither


def test_a_refusal_is_an_alert_next_to_the_field_to_fix():
    """A refused change shows its sentence as an alert, puts the cursor in the field to
    fix and ties the sentence to that field; a success is a status, not an alert."""
    _, tags = account_page(
        User("ann", "viewer"), message="The current password you typed is wrong.", focus="current"
    )
    assert tags.tags["password-status"][1]["role"] == "alert"
    current = tags.tags["current-password"][1]
    assert "autofocus" in current and current["aria-describedby"] == "password-status"
    _, tags = account_page(User("ann", "viewer"), message="too short", focus="new")
    assert tags.tags["new-password"][1]["aria-describedby"] == "new-password-hint password-status"
    _, tags = account_page(User("ann", "viewer"), message=accounts.PASSWORD_CHANGED, changed=True)
    assert tags.tags["password-status"][1]["role"] == "status"
    assert "status-ok" in (tags.tags["password-status"][1]["class"] or "")


def test_the_form_is_checked_before_the_master_is_asked():
    """A missing current password or two new passwords that differ are refused with a
    sentence and the field to fix; a complete form goes on to the master."""
    assert accounts.form_problem({"new_password": "x" * 9, "new_password_again": "x" * 9}) == (
        accounts.TYPE_CURRENT_PASSWORD,
        "current",
    )
    differ = {"current_password": "old one", "new_password": "new one!", "new_password_again": "new one?"}
    assert accounts.form_problem(differ) == (accounts.NEW_PASSWORDS_DIFFER, "new")
    same = dict(differ, new_password_again="new one!")
    assert accounts.form_problem(same) is None


def test_the_header_links_a_signed_in_visitor_to_the_account_page():
    """Every page's header names the signed-in account as a link to /account, which a
    screen reader announces as the account page."""
    html = TEMPLATES.get_template("not_found.html").render(pages.not_found_context("gone", VISITOR))
    tags = _Tags()
    tags.feed(html)
    assert tags.tags["account-link"][1]["href"] == "/account"
    assert ": your account" in html
    anonymous = TEMPLATES.get_template("not_found.html").render(pages.not_found_context("gone"))
    assert 'href="/account"' not in anonymous
