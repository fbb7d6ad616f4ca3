"""Accounts in a real headless Chromium against a real cluster: signing in with the form,
uploading and deleting one's own video, no Delete on another's video, an admin deleting
any, private videos hidden from others, signing out ending the session, and another
site's page (served on another port of the same host) unable to act with the session.
Chromium is launched as in test_browser.py (Debian's, never a downloaded one)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect

import test_browser
from harness import multipart, tiny_mp4
from test_browser import TIMEOUT_MS, open_home, sign_in, upload_in_page

# test_browser.py's fixtures: one Chromium per module, and a clip Chromium plays.
browser = test_browser.browser
clip = test_browser.clip

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def accounts(cluster) -> dict[str, str]:
    """Two uploaders for this module: role name -> account name."""
    suffix = uuid.uuid4().hex[:6]
    names = {"ulla": f"ulla{suffix}", "olga": f"olga{suffix}"}
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        for name in names.values():
            fields = {"username": name, "password": PASSWORD, "role": "uploader"}
            async with http.post(f"{cluster.url}/api/users", json=fields) as answer:
                assert answer.status == 201
    return names


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    return context, await context.new_page()


async def sign_in_with_form(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-button")
    await expect(page.locator("#signed-in-name")).to_have_text(username)


async def store_as(cluster, username: str, name: str, visibility: str = "public") -> None:
    """Upload a tiny video as `username` over HTTP (a token of its own)."""
    token = cluster.sign_in(username, PASSWORD)
    file_part, content_type = multipart(name, tiny_mp4())
    boundary = content_type.split("boundary=")[1]
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="visibility"\r\n\r\n{visibility}\r\n'
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{cluster.url}/upload", data=field.encode() + file_part, headers=headers) as answer,
    ):
        assert answer.status == 201, await answer.text()


async def exists(cluster, name: str) -> bool:
    async with (
        aiohttp.ClientSession(headers=cluster.admin_headers()) as http,
        http.get(f"{cluster.url}/stream/{quote(name, safe='')}", headers={"Range": "bytes=0-0"}) as answer,
    ):
        return answer.status == 206


async def test_sign_in_upload_delete_own_then_sign_out(cluster, browser, accounts, clip, tmp_path):
    """An uploader signs in with the form, uploads through the page, deletes the video from
    its watch page, and signs out; the old session cookie then signs nobody in."""
    context, page = await new_page(browser)
    await sign_in_with_form(page, cluster.url, accounts["ulla"], PASSWORD)
    await open_home(page, cluster.url)
    local = tmp_path / f"own-{uuid.uuid4().hex[:8]}.mp4"
    local.write_bytes(clip.read_bytes())
    name = await upload_in_page(page, local)
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("#delete-button")
    await page.wait_for_url(f"{cluster.url}/")
    assert not await exists(cluster, name)

    cookie = next(c for c in await context.cookies() if c["name"] == "myyoutube_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    await context.add_cookies([cookie])  # the old session, put back by hand
    await page.goto(f"{cluster.url}/")
    await expect(page.locator("#sign-in")).to_be_visible()
    await context.close()


async def test_delete_shown_only_to_owner_and_admin_who_deletes_any(cluster, browser, accounts):
    """Another uploader's watch page has no Delete button for ulla; an admin has one, and
    it deletes the video."""
    name = f"olgas-{uuid.uuid4().hex[:8]}.mp4"
    await store_as(cluster, accounts["olga"], name)
    context, page = await new_page(browser)
    await sign_in_with_form(page, cluster.url, accounts["ulla"], PASSWORD)
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    await expect(page.locator(".file-name")).to_have_text(name)
    await expect(page.locator("#delete-button")).to_have_count(0)
    await expect(page.locator("#edit-form")).to_have_count(0)
    await context.close()

    context, page = await new_page(browser)
    await sign_in(context, cluster.url, cluster.admin_token)
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("#delete-button")
    await page.wait_for_url(f"{cluster.url}/")
    assert not await exists(cluster, name)
    await context.close()


async def test_private_video_is_invisible_to_anonymous_and_other_users(cluster, browser, accounts):
    """olga's private video: not in the grid and a 404 watch page for an anonymous visitor
    and for ulla; in the grid for olga."""
    name = f"secret-{uuid.uuid4().hex[:8]}.mp4"
    await store_as(cluster, accounts["olga"], name, "private")
    for who in (None, accounts["ulla"], accounts["olga"]):
        context, page = await new_page(browser)
        if who is not None:
            await sign_in_with_form(page, cluster.url, who, PASSWORD)
        await open_home(page, cluster.url)
        cards = page.locator(f'#videos a.video-card[data-name="{name}"]')
        await expect(cards).to_have_count(1 if who == accounts["olga"] else 0)
        answer = await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
        assert answer is not None and answer.status == (200 if who == accounts["olga"] else 404)
        await context.close()


async def test_signing_in_from_a_private_videos_link_lands_on_the_video(cluster, browser, accounts):
    """Signed out, olga follows the link to her private video: the 404 page's Sign in
    brings her back to that video once signed in, not to the home page."""
    name = f"mine-{uuid.uuid4().hex[:8]}.mp4"
    await store_as(cluster, accounts["olga"], name, "private")
    context, page = await new_page(browser)
    watch_url = f"{cluster.url}/watch/{quote(name, safe='')}"
    answer = await page.goto(watch_url)
    assert answer is not None and answer.status == 404
    await page.click("#sign-in")
    await page.fill("#username", accounts["olga"])
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await page.wait_for_url(watch_url)
    await expect(page.locator(".file-name")).to_have_text(name)
    await context.close()


async def test_the_longest_account_name_fits_a_phones_header(cluster, browser):
    """Signed in with a 32-letter name (the longest allowed) at phone width, the page does
    not scroll sideways and "Sign out" is on the screen."""
    name = ("longname" + uuid.uuid4().hex)[:32]
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        fields = {"username": name, "password": PASSWORD, "role": "viewer"}
        async with http.post(f"{cluster.url}/api/users", json=fields) as answer:
            assert answer.status == 201
    context, page = await new_page(browser)
    await page.set_viewport_size(test_browser.PHONE)
    await sign_in_with_form(page, cluster.url, name, PASSWORD)
    assert await page.evaluate("document.documentElement.scrollWidth") <= test_browser.PHONE["width"]
    right = await page.eval_on_selector("#sign-out", "e => e.getBoundingClientRect().right")
    assert right <= test_browser.PHONE["width"]
    await context.close()


EVIL_PAGE = """<!DOCTYPE html>
<html><body>
<form id="post" method="post" action="{web}/api/admin/purge-orphans" enctype="multipart/form-data">
  <input name="x" value="1">
</form>
<script>
window.tryDelete = () => fetch("{web}/videos/{victim}", {{method: "DELETE", credentials: "include"}})
  .then((r) => r.status, () => "blocked");
</script>
</body></html>"""


async def test_another_sites_page_cannot_post_or_delete_with_the_session(cluster, browser):
    """A page served from another port of the same host (same site, so the SameSite=Lax
    cookie goes along) posts a form to an admin route and sends a DELETE: the POST is
    refused with 403 by the web front end, the DELETE never happens, the video stays."""
    victim = f"victim-{uuid.uuid4().hex[:8]}.mp4"
    await store_as_admin(cluster, victim)
    evil = web.Application()
    page_text = EVIL_PAGE.format(web=cluster.url, victim=quote(victim, safe=""))

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(text=page_text, content_type="text/html")

    evil.router.add_get("/", evil_page)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    evil_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        context, page = await new_page(browser)
        await sign_in(context, cluster.url, cluster.admin_token)
        await page.goto(evil_url + "/")
        assert await page.evaluate("window.tryDelete()") != 200
        async with page.expect_response(lambda r: r.url.endswith("/purge-orphans")) as answer:
            await page.evaluate("document.getElementById('post').submit()")
        assert (await answer.value).status == 403
        assert await exists(cluster, victim)
        await context.close()
    finally:
        await runner.cleanup()


async def store_as_admin(cluster, name: str) -> None:
    file_part, content_type = multipart(name, tiny_mp4())
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{cluster.url}/upload", data=file_part, headers=headers) as answer,
    ):
        assert answer.status == 201


async def test_owner_edits_title_description_and_visibility_on_the_watch_page(cluster, browser, accounts):
    """The owner changes title, description and visibility with the watch page's form: the
    page shows them at once (the details' "Who can watch" too) and after a reload; another
    uploader sees no form."""
    name = f"ullas-{uuid.uuid4().hex[:8]}.mp4"
    await store_as(cluster, accounts["ulla"], name)
    context, page = await new_page(browser)
    await sign_in_with_form(page, cluster.url, accounts["ulla"], PASSWORD)
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    await page.click("details.edit summary")
    await page.fill("#edit-title", "Café <b>night</b> walk")
    await page.fill("#edit-description", "Filmed on a phone.\nSecond line.")
    await page.select_option("#edit-visibility", "unlisted")
    await page.click("#edit-form button[type=submit]")
    await expect(page.locator("#edit-status")).to_have_text("Saved.")
    await expect(page.locator("#video-title")).to_have_text("Café <b>night</b> walk")
    who = page.locator(".meta-item", has=page.locator("dt", has_text="Who can watch")).locator("dd")
    await expect(who).to_have_text("Anyone with the link")
    await page.reload()
    await expect(who).to_have_text("Anyone with the link")
    await expect(page.locator("#video-title")).to_have_text("Café <b>night</b> walk")
    await expect(page.locator("#video-description")).to_have_text("Filmed on a phone.\nSecond line.")
    await expect(page.locator("#edit-visibility")).to_have_value("unlisted")
    await context.close()

    context, page = await new_page(browser)
    await sign_in_with_form(page, cluster.url, accounts["olga"], PASSWORD)
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    await expect(page.locator("#video-title")).to_have_text("Café <b>night</b> walk")
    await expect(page.locator("#edit-form")).to_have_count(0)
    await context.close()


async def test_changing_ones_password_on_the_account_page_by_keyboard(cluster, browser):
    """From the header's account link, a person changes their password with the keyboard
    alone: a wrong current password is said in an alert and the cursor waits in that
    field; the right one changes it, and the browser stays signed in (a fresh session)
    while being told every other session was signed out."""
    name = f"kay{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        fields = {"username": name, "password": PASSWORD, "role": "viewer"}
        async with http.post(f"{cluster.url}/api/users", json=fields) as answer:
            assert answer.status == 201
    context, page = await new_page(browser)
    await sign_in_with_form(page, cluster.url, name, PASSWORD)
    await page.click("#account-link")
    await expect(page.locator("#account-name")).to_have_text(name)
    await expect(page.locator("#account-role")).to_contain_text("Viewer")
    await expect(page.locator("#account-storage")).to_have_count(0)  # a viewer stores nothing

    async def type_form(current: str, new: str) -> None:
        await page.focus("#current-password")
        await page.keyboard.type(current)
        for field in ("#new-password", "#new-password-again"):
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.id") == field[1:]
            await page.keyboard.type(new)
        await page.keyboard.press("Enter")

    await type_form("not my password", "my new password")
    await expect(page.locator("#password-status[role=alert]")).to_contain_text(
        "current password you typed is wrong"
    )
    assert await page.evaluate("document.activeElement.id") == "current-password"
    await type_form(PASSWORD, "my new password")
    await expect(page.locator("#password-status[role=status]")).to_contain_text("Every other session")
    assert page.url == f"{cluster.url}/account?changed=1"
    await expect(page.locator("#signed-in-name")).to_have_text(name)
    cluster.sign_in(name, "my new password")
    await context.close()
