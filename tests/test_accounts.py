"""Accounts over HTTP against a real cluster: every route's answer for an anonymous
visitor, a viewer, an uploader and an admin (one table); owners and visibility; cookie
sessions and CSRF; foreign Host names; sign-in throttling; quotas; revocation."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import pytest

from harness import ADMIN_PASSWORD, mp4_bytes, multipart
from myyoutube.client import MasterClient, RequestFailed
from myyoutube.launch import start_role
from myyoutube.web.auth import HSTS_MAX_AGE_S
from myyoutube.web.common import csrf_token

PASSWORD = "correct horse battery"
ROLES = ("anonymous", "viewer", "uploader", "admin")
# An uploader with room for a small video only.
SMALL_QUOTA_BYTES = 200_000


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}.mp4"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class People:
    """Bearer headers per role ('anonymous': none), plus a second uploader and a small-quota one."""

    headers: dict[str, dict[str, str]]
    other_uploader: dict[str, str]
    small_quota: dict[str, str]


async def add_user(http, cluster, name: str, role: str, quota_bytes=None) -> None:
    fields = {"username": name, "password": PASSWORD, "role": role, "quota_bytes": quota_bytes}
    async with http.post(f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()) as answer:
        assert answer.status == 201, await answer.text()


async def refused_account(http, cluster, name: str) -> str:
    """POST /api/users for a viewer `name`, which must be refused with 409; the sentence."""
    fields = {"username": name, "password": PASSWORD, "role": "viewer"}
    async with http.post(f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()) as answer:
        assert answer.status == 409
        return (await answer.json())["error"]


@pytest.fixture(scope="module")
async def people(cluster):
    suffix = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession() as http:
        for name, role, quota in (
            (f"vera{suffix}", "viewer", None),
            (f"ulla{suffix}", "uploader", None),
            (f"olga{suffix}", "uploader", None),
            (f"tiny{suffix}", "uploader", SMALL_QUOTA_BYTES),
        ):
            await add_user(http, cluster, name, role, quota)
    token = {name: cluster.sign_in(f"{name}{suffix}", PASSWORD) for name in ("vera", "ulla", "olga", "tiny")}
    return People(
        headers={
            "anonymous": {},
            "viewer": bearer(token["vera"]),
            "uploader": bearer(token["ulla"]),
            "admin": cluster.admin_headers(),
        },
        other_uploader=bearer(token["olga"]),
        small_quota=bearer(token["tiny"]),
    )


async def upload_as(http, cluster, headers: dict, name: str, visibility: str = "public", size: int = 1000):
    """POST /upload with a visibility field before the file; (status, JSON)."""
    file_part, content_type = multipart(name, mp4_bytes(os.urandom(size)))
    boundary = content_type.split("boundary=")[1]
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="visibility"\r\n\r\n{visibility}\r\n'
    async with http.post(
        f"{cluster.url}/upload",
        data=field.encode() + file_part,
        headers={"Content-Type": content_type, **headers},
    ) as answer:
        return answer.status, await answer.json()


@pytest.fixture(scope="module")
async def videos(cluster):
    """Two of admin's videos, one public and one private (with posters)."""
    async with aiohttp.ClientSession() as http:
        names = {"public": unique("pub"), "private": unique("priv")}
        for visibility, name in names.items():
            status, answer = await upload_as(http, cluster, cluster.admin_headers(), name, visibility)
            assert status == 201, answer
    return names


# (method, path, what the body is) -> status for anonymous, viewer, uploader, admin.
# {public}/{private}: admin's videos; {victim}: a fresh admin video per request; {account}:
# a fresh account per request.
ROUTES = [
    ("GET", "/", None, (200, 200, 200, 200)),
    ("GET", "/login", None, (200, 303, 303, 303)),
    ("GET", "/watch/{public}", None, (200, 200, 200, 200)),
    ("GET", "/watch/{private}", None, (404, 404, 404, 200)),
    ("GET", "/stream/{public}", None, (200, 200, 200, 200)),
    ("GET", "/stream/{private}", None, (404, 404, 404, 200)),
    ("GET", "/thumbnail/{public}", None, (200, 200, 200, 200)),
    ("GET", "/thumbnail/{private}", None, (404, 404, 404, 200)),
    ("GET", "/videos/{public}", None, (200, 200, 200, 200)),
    ("GET", "/videos/{private}", None, (404, 404, 404, 200)),
    ("GET", "/listar", None, (200, 200, 200, 200)),
    ("GET", "/search?q=pub", None, (200, 200, 200, 200)),
    ("GET", "/api/me", None, (200, 200, 200, 200)),
    ("GET", "/api/status", None, (401, 403, 403, 200)),
    ("GET", "/status", None, (303, 403, 403, 200)),
    ("GET", "/account", None, (303, 200, 200, 200)),
    ("GET", "/metrics", None, (401, 403, 403, 200)),
    ("POST", "/api/admin/purge-orphans", None, (401, 403, 403, 200)),
    ("GET", "/api/admin/backup", None, (401, 403, 403, 200)),
    ("GET", "/api/users", None, (401, 403, 403, 200)),
    ("POST", "/api/users", "new account", (401, 403, 403, 201)),
    ("DELETE", "/api/users/{account}", None, (401, 403, 403, 200)),
    ("PATCH", "/api/users/{account}", "role", (401, 403, 403, 200)),
    ("PUT", "/api/users/{account}/password", "password", (401, 403, 403, 200)),
    ("POST", "/upload", "video", (401, 403, 201, 201)),
    ("PATCH", "/videos/{victim}", "visibility", (401, 403, 403, 200)),
    ("DELETE", "/videos/{victim}", None, (401, 403, 403, 200)),
    ("GET", "/static/app.css", None, (200, 200, 200, 200)),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
async def test_every_route_for_every_role(cluster, people, videos, method, path, body, expected):
    """Each route answers each kind of visitor as the permission rules say: private videos
    are 404 to all but their owner and admins, operator routes are 401 anonymously and 403
    to non-admins, uploads need the uploader role, others' videos cannot be changed. Every
    answer carries the security headers (a streamed one too, such as the index backup)."""
    async with aiohttp.ClientSession() as http:
        for role, status in zip(ROLES, expected, strict=True):
            url = cluster.url + await _fill(http, cluster, path, videos)
            headers = people.headers[role]
            if body == "video":
                got, answer = await upload_as(http, cluster, headers, unique("table"))
                assert got == status, (role, answer)
                continue
            payload = await _body(http, cluster, body)
            async with http.request(
                method, url, json=payload, headers=headers, allow_redirects=False
            ) as answer:
                assert answer.status == status, (role, method, path, await answer.text())
                assert answer.headers.get("X-Content-Type-Options") == "nosniff", (role, method, path)
                if status >= 400 and not path.startswith("/watch/"):  # a watch 404 is a page
                    assert "error" in await answer.json()


async def _fill(http, cluster, path: str, videos: dict) -> str:
    if "{victim}" in path:
        victim = unique("victim")
        status, answer = await upload_as(http, cluster, cluster.admin_headers(), victim)
        assert status == 201, answer
        return path.replace("{victim}", quote(victim, safe=""))
    if "{account}" in path:
        name = f"acct{uuid.uuid4().hex[:8]}"
        await add_user(http, cluster, name, "viewer")
        return path.replace("{account}", name)
    return path.format(public=quote(videos["public"], safe=""), private=quote(videos["private"], safe=""))


async def _body(http, cluster, kind: str | None):
    if kind == "new account":
        return {"username": f"new{uuid.uuid4().hex[:8]}", "password": PASSWORD, "role": "viewer"}
    if kind == "password":
        return {"password": "another long password"}
    if kind == "role":
        return {"role": "uploader"}
    if kind == "visibility":
        return {"visibility": "unlisted"}
    return None


async def listed(http, cluster, headers) -> list[str]:
    async with http.get(f"{cluster.url}/listar", headers=headers) as answer:
        return [video["name"] for video in (await answer.json())["videos"]]


async def test_visibility_decides_who_lists_and_watches(cluster, people):
    """A private video is listed and watchable for its owner and admins only; an unlisted
    one is watchable by anyone with the link but listed only for its owner and admins."""
    async with aiohttp.ClientSession() as http:
        private, unlisted = unique("olga-private"), unique("olga-unlisted")
        for name, visibility in ((private, "private"), (unlisted, "unlisted")):
            status, answer = await upload_as(http, cluster, people.other_uploader, name, visibility)
            assert status == 201, answer
        for who, sees in (
            (people.other_uploader, True),
            (cluster.admin_headers(), True),
            (people.headers["uploader"], False),
            ({}, False),
        ):
            names = await listed(http, cluster, who)
            assert (private in names, unlisted in names) == (sees, sees)
            async with http.get(f"{cluster.url}/stream/{quote(private)}", headers=who) as answer:
                assert answer.status == (200 if sees else 404)
            async with http.get(f"{cluster.url}/stream/{quote(unlisted)}", headers=who) as answer:
                assert answer.status == 200
            assert answer.headers["Cache-Control"] == "private, no-cache"


async def test_a_look_alike_name_names_only_a_video_the_uploader_may_list(cluster, people):
    """An upload whose name looks like another account's unlisted or private video ("oIga"
    with a capital I for "olga") is refused without naming that video: its exact name is
    the unlisted one's link. Its owner, who may list it, is told which name it looks like."""
    async with aiohttp.ClientSession() as http:
        for visibility in ("unlisted", "private"):
            hidden = unique(f"olga-{visibility}")
            assert (await upload_as(http, cluster, people.other_uploader, hidden, visibility))[0] == 201
            guess = hidden.replace("olga", "oIga")
            status, answer = await upload_as(http, cluster, people.headers["uploader"], guess)
            assert status == 409 and "looks just like" in answer["error"] and hidden not in answer["error"]
            status, answer = await upload_as(http, cluster, people.other_uploader, guess)
            assert status == 409 and hidden in answer["error"]


async def test_a_video_made_private_is_not_served_from_any_cache(cluster, people):
    """A public video may be kept by shared caches but must be revalidated before each use
    (no freshness lifetime): once its owner makes it private, the revalidation a proxy
    sends for an anonymous viewer (If-None-Match with the ETag it holds) is a 404, not a 304
    that would let the proxy keep showing it to everyone. A viewer's plain request is a
    404 at once too: the web front end forgets where it read the video from a moment ago
    (location_cache.py) when a video changes through it."""
    async with aiohttp.ClientSession() as http:
        name = unique("olga-was-public")
        assert (await upload_as(http, cluster, people.other_uploader, name))[0] == 201
        url = f"{cluster.url}/stream/{quote(name)}"
        async with http.get(url) as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "public, no-cache"
            etag = answer.headers["ETag"]
        async with http.get(url, headers={"If-None-Match": etag}) as answer:
            assert answer.status == 304  # what a cache's revalidation gets while it is public
        async with http.patch(
            f"{cluster.url}/videos/{quote(name)}",
            json={"visibility": "private"},
            headers=people.other_uploader,
        ) as answer:
            assert answer.status == 200, await answer.text()
        async with http.get(url, headers={"If-None-Match": etag}) as answer:
            assert answer.status == 404
        async with http.get(url) as answer:
            assert answer.status == 404


async def test_owner_deletes_own_video_but_not_another_uploaders(cluster, people):
    """An uploader deletes its own video; another uploader's is refused with 403 and a
    sentence about deleting (it said "change" for a delete)."""
    async with aiohttp.ClientSession() as http:
        mine, theirs = unique("mine"), unique("theirs")
        assert (await upload_as(http, cluster, people.headers["uploader"], mine))[0] == 201
        assert (await upload_as(http, cluster, people.other_uploader, theirs))[0] == 201
        delete = f"{cluster.url}/videos/"
        async with http.delete(delete + quote(theirs), headers=people.headers["uploader"]) as answer:
            assert answer.status == 403
            assert (await answer.json())["error"] == "Only the video's owner or an admin may delete it."
        async with http.delete(delete + quote(mine), headers=people.headers["uploader"]) as answer:
            assert answer.status == 200
        async with http.get(f"{cluster.url}/stream/{quote(theirs)}") as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "public, no-cache"  # a public video
    log = (cluster.root / "logs" / "master.log").read_text()
    assert f"deleted {mine} (owned by " in log and "at the request of ulla" in log


async def test_quota_refuses_uploads_over_it(cluster, people):
    """An upload whose Content-Length is past the account's quota is 413 with a sentence,
    before its body is read; one that fits is stored."""
    async with aiohttp.ClientSession() as http:
        status, answer = await upload_as(http, cluster, people.small_quota, unique("big"), size=300_000)
        assert status == 413 and "quota" in answer["error"]
        status, answer = await upload_as(http, cluster, people.small_quota, unique("fits"), size=50_000)
        assert status == 201, answer


def chunked_body(content_type: str):
    """A streamed body (no Content-Length) of a 300 KB video under the form's boundary."""
    boundary = content_type.split("boundary=")[1]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{unique("stream")}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()

    async def parts():
        yield head
        yield mp4_bytes(os.urandom(300_000))
        yield f"\r\n--{boundary}--\r\n".encode()

    return parts()


async def test_upload_over_quota_without_length_is_refused_by_the_master(cluster, people):
    """Without Content-Length, the master stops the upload as soon as the bytes pass the quota."""
    _, content_type = multipart("x.mp4", b"")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{cluster.url}/upload",
            data=chunked_body(content_type),
            headers={"Content-Type": content_type, **people.small_quota},
        ) as answer,
    ):
        assert answer.status == 413
        assert "quota" in (await answer.json())["error"]


def trickled_body(content_type: str, name: str, payload_bytes: int):
    """A streamed form body of a video of about `payload_bytes`, sent 256 KiB every 50 ms,
    so that two such uploads are in the master at the same time."""
    boundary = content_type.split("boundary=")[1]
    video = mp4_bytes(os.urandom(payload_bytes))
    step = 256 * 1024

    async def parts():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        for start in range(0, len(video), step):
            yield video[start : start + step]
            await asyncio.sleep(0.05)
        yield f"\r\n--{boundary}--\r\n".encode()

    return parts()


async def test_concurrent_uploads_of_one_account_cannot_pass_its_quota_together(cluster):
    """Two uploads of 2 MiB by one account with a 3 MiB quota, running at the same time:
    each fits alone, but the master holds each one's bytes while it runs, so exactly one
    is stored and the other is 413; the account stays within its quota, and the refused
    upload's hold is given back (a 0.5 MiB upload then fits)."""
    name = f"race{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "uploader", quota_bytes=3 * 1024**2)
        headers = bearer(cluster.sign_in(name, PASSWORD))

        async def send(video: str) -> int:
            _, content_type = multipart("x.mp4", b"")
            async with http.post(
                f"{cluster.url}/upload",
                data=trickled_body(content_type, video, 2 * 1024**2),
                headers={"Content-Type": content_type, **headers},
            ) as answer:
                return answer.status

        statuses = await asyncio.gather(send(unique("first")), send(unique("second")))
        assert sorted(statuses) == [201, 413]
        async with http.get(f"{cluster.url}/api/me", headers=headers) as answer:
            me = (await answer.json())["user"]
        assert me["used_bytes"] <= me["quota_bytes"]
        status, answer = await upload_as(http, cluster, headers, unique("small"), size=512 * 1024)
        assert status == 201, answer


async def sign_in_form(http, cluster, username: str, password: str, **headers):
    return await http.post(
        f"{cluster.url}/login",
        data={"username": username, "password": password, "next": "/"},
        headers={"Origin": cluster.url, **headers},
        allow_redirects=False,
    )


async def test_cookie_session_needs_same_origin_and_csrf_token(cluster):
    """Signing in with the form sets an HttpOnly, SameSite=Lax session cookie; a DELETE
    with that cookie is refused from another origin, without Origin and Sec-Fetch-Site, and
    without the page's CSRF token; with both it works. Signing out ends the session."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # 127.0.0.1 cookies
        answer = await sign_in_form(http, cluster, "admin", ADMIN_PASSWORD)
        assert answer.status == 303
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        async with http.get(cluster.url + "/") as page:
            html = await page.text()
            assert page.headers["Cache-Control"] == "no-store"
        token = html.split('name="csrf-token" content="')[1].split('"')[0]
        victim = unique("csrf")
        assert (await upload_as(http, cluster, cluster.admin_headers(), victim))[0] == 201
        url = f"{cluster.url}/videos/{quote(victim)}"
        for headers in (
            {"Origin": "http://evil.example", "X-CSRF-Token": token},
            {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": token},
            {"X-CSRF-Token": token},  # neither Origin nor Sec-Fetch-Site
            {"Origin": cluster.url},  # no token
            {"Origin": cluster.url, "X-CSRF-Token": "0" * 64},
        ):
            async with http.delete(url, headers=headers) as refused:
                assert refused.status == 403, headers
        async with http.delete(url, headers={"Origin": cluster.url, "X-CSRF-Token": token}) as answer:
            assert answer.status == 200
        form = {"csrf_token": token}
        async with http.post(
            f"{cluster.url}/logout", data=form, headers={"Origin": cluster.url}, allow_redirects=False
        ) as answer:
            assert answer.status == 303
        async with http.get(f"{cluster.url}/api/me") as answer:
            assert (await answer.json())["user"] is None


async def test_over_https_the_session_cookie_is_one_no_other_site_can_plant(cluster):
    """Over https (here a --trusted-proxy saying X-Forwarded-Proto: https) the session
    cookie is `__Host-myyoutube_session`, Secure, Path=/ and without Domain, which a browser
    takes from this host only; a plain `myyoutube_session` cookie, which a page on a
    sibling subdomain could set for the whole domain, signs nobody in there (it used to:
    the visitor then used, and uploaded into, the planter's account). Signing out drops it.
    Every answer over https, a refusal too, tells the browser to keep to https (HSTS);
    none over plain http does (a browser ignores it there, and it would be a lie)."""
    args = ["--master", cluster.master.address, "--port", "0", "--trusted-proxy", "127.0.0.1"]
    proxied = start_role("myyoutube.web", args, cluster.root / "logs" / "web-proxied.log")
    url, https = f"http://127.0.0.1:{proxied.port}", {"X-Forwarded-Proto": "https"}
    try:
        async with aiohttp.ClientSession() as http:
            answer = await http.post(
                f"{url}/login",
                data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/"},
                headers={"Origin": f"https://127.0.0.1:{proxied.port}", **https},
                allow_redirects=False,
            )
            assert answer.status == 303
            cookie = answer.headers["Set-Cookie"]
            assert cookie.startswith("__Host-myyoutube_session=") and "; Secure" in cookie
            assert "Path=/" in cookie and "Domain" not in cookie
            assert answer.headers["Strict-Transport-Security"] == f"max-age={HSTS_MAX_AGE_S}"
            session = cookie.split(";")[0].split("=", 1)[1]
            for name, signed_in in (("__Host-myyoutube_session", True), ("myyoutube_session", False)):
                async with http.get(f"{url}/api/me", headers={"Cookie": f"{name}={session}", **https}) as me:
                    assert ((await me.json())["user"] is not None) is signed_in, name
                    assert "Strict-Transport-Security" in me.headers
            async with http.get(f"{url}/stream/no-such-video.mp4", headers=https) as missing:
                assert missing.status == 404 and "Strict-Transport-Security" in missing.headers
            async with http.get(f"{url}/api/me", headers={"Cookie": f"myyoutube_session={session}"}) as me:
                assert (await me.json())["user"] is not None  # over plain http, the plain name
                assert "Strict-Transport-Security" not in me.headers
            async with http.post(
                f"{url}/logout",
                headers={
                    "Cookie": f"__Host-myyoutube_session={session}",
                    "Origin": f"https://127.0.0.1:{proxied.port}",
                    "X-CSRF-Token": csrf_token(session),
                    **https,
                },
                allow_redirects=False,
            ) as out:
                assert out.status == 303
                dropped = out.headers["Set-Cookie"]
                assert dropped.startswith("__Host-myyoutube_session=") and "Max-Age=0" in dropped
                assert "; Secure" in dropped
    finally:
        proxied.stop()


async def test_foreign_host_is_refused(cluster):
    """A request naming another Host (what DNS rebinding produces) is 421, even a DELETE
    carrying a valid token; localhost on the same port is fine."""
    async with aiohttp.ClientSession() as http:
        evil = {"Host": f"evil.example:{cluster.web.port}"}
        async with http.get(f"{cluster.url}/listar", headers=evil) as answer:
            assert answer.status == 421
        async with http.delete(
            f"{cluster.url}/videos/whatever.mp4", headers={**evil, **cluster.admin_headers()}
        ) as answer:
            assert answer.status == 421
        async with http.get(
            f"{cluster.url}/listar", headers={"Host": f"localhost:{cluster.web.port}"}
        ) as answer:
            assert answer.status == 200


async def test_sign_in_is_throttled_and_says_the_same_for_unknown_accounts(fresh_cluster):
    """A wrong password and an unknown account get the same 401 sentence; past the free
    failures an account is throttled with 429 and Retry-After, even for the right password,
    until the wait is over. Guesses sent all at once get no more than the free failures
    between them: each counts before the master has answered any of them. Strangers'
    guesses do not lock the owner out: from an address it signed in from before, the
    account still signs in while it stays throttled for every other address. A stolen
    token guessing its account's current password (to change it) is throttled the same
    way, in the same budget as sign-ins."""
    cluster = fresh_cluster(datanodes=1, web_args=("--trusted-proxy", "127.0.0.1"))
    async with aiohttp.ClientSession() as http:
        # Not 127.0.0.1, from which the harness signed admin in: a known address (below).
        async def attempt(username: str, password: str, address: str = "192.0.2.1"):
            async with http.post(
                f"{cluster.url}/api/login",
                json={"username": username, "password": password},
                headers={"X-Forwarded-For": address},
            ) as answer:
                return answer.status, await answer.json(), answer.headers.get("Retry-After")

        wrong = await attempt("admin", "not the password")
        unknown = await attempt("nobody", "not the password")
        assert wrong[:2] == unknown[:2] and wrong[0] == 401
        for _ in range(5):  # the sixth failure in a row starts the backoff
            assert (await attempt("admin", "still wrong"))[0] == 401
        status, answer, retry = await attempt("admin", ADMIN_PASSWORD)
        assert status == 429 and int(retry) >= 1 and "try again" in answer["error"]
        await asyncio.sleep(int(retry) + 0.2)
        assert (await attempt("admin", ADMIN_PASSWORD))[0] == 200
        burst = await asyncio.gather(*(attempt("someone", f"guess {n}") for n in range(12)))
        assert sorted(status for status, _, _ in burst) == [401] * 6 + [429] * 6  # as if one by one

        home, stranger = "198.51.100.1", "203.0.113.7"
        assert (await attempt("admin", ADMIN_PASSWORD, home))[0] == 200
        for _ in range(6):
            assert (await attempt("admin", "a stranger's guess", stranger))[0] == 401
        assert (await attempt("admin", ADMIN_PASSWORD, stranger))[0] == 429
        assert (await attempt("admin", ADMIN_PASSWORD, home))[0] == 200
        assert (await attempt("admin", ADMIN_PASSWORD, "203.0.113.8"))[0] == 429

        # A stolen token, used from an address its owner never signed in from: guessing the
        # current password to change it draws on the very budget sign-ins do.
        await add_user(http, cluster, "pat", "uploader")
        stolen = bearer(cluster.sign_in("pat", PASSWORD))

        async def change(current: str, address: str = stranger):
            async with http.put(
                f"{cluster.url}/api/users/pat/password",
                json={"password": "the thief's password", "current_password": current},
                headers={**stolen, "X-Forwarded-For": address},
            ) as answer:
                return answer.status, await answer.json(), answer.headers.get("Retry-After")

        for _ in range(6):
            status, answer, _ = await change("a guess")
            assert status == 403 and "current password" in answer["error"]
        status, answer, retry = await change(PASSWORD)
        assert status == 429 and int(retry) >= 1 and "try again" in answer["error"]
        assert (await attempt("pat", PASSWORD, "203.0.113.9"))[0] == 429  # one budget
        assert (await attempt("pat", PASSWORD, "127.0.0.1"))[0] == 200  # its owner, at home, still does


async def test_an_act_on_an_admin_account_takes_the_admins_own_password(fresh_cluster):
    """A stolen admin token cannot lock the owner out through another admin: making an
    admin, changing or removing one and setting another admin's password each take the
    asker's own password ("current_password"), 403 with a sentence without it or with a
    wrong one, and nothing changes. Tries are throttled with sign-ins: a thief guessing
    from a new address is 429 after the free failures, even with the right password. A
    password sent with an act on any other account is checked too (403 when wrong), so
    it cannot pass for a right one and clear the throttle. Acts on other accounts need
    none."""
    cluster = fresh_cluster(datanodes=1, web_args=("--trusted-proxy", "127.0.0.1"))
    own = {"current_password": ADMIN_PASSWORD}
    wrong = {"current_password": "not my password"}
    async with aiohttp.ClientSession() as http:
        # The address the harness signed admin in from: held by its own throttle only.
        async def ask(method: str, path: str, fields: dict | None, address: str = "127.0.0.1"):
            headers = {**cluster.admin_headers(), "X-Forwarded-For": address}
            async with http.request(method, f"{cluster.url}{path}", json=fields, headers=headers) as answer:
                return answer.status, await answer.json()

        async def role_of(name: str) -> str | None:
            _, listed = await ask("GET", "/api/users", None)
            return next((user["role"] for user in listed["users"] if user["name"] == name), None)

        boss = {"username": "boss", "password": PASSWORD, "role": "admin"}
        thief = "203.0.113.7"  # an address the admin never signed in from
        for _ in range(6):
            assert (await ask("POST", "/api/users", {**boss, **wrong}, thief))[0] == 403
        status, answer = await ask("POST", "/api/users", {**boss, **own}, thief)
        assert status == 429 and "try again" in answer["error"]

        for refused in (boss, {**boss, **wrong}):
            status, answer = await ask("POST", "/api/users", refused)
            assert status == 403 and "password" in answer["error"], answer
        assert await role_of("boss") is None
        assert (await ask("POST", "/api/users", {**boss, **own}))[0] == 201
        for method, path, fields in (
            ("PUT", "/api/users/boss/password", {"password": "the thief's password"}),
            ("PATCH", "/api/users/boss", {"role": "viewer"}),
            ("PATCH", "/api/users/boss", {"quota_bytes": 1000}),
            ("DELETE", "/api/users/boss", None),
        ):
            for confirmation in ({}, wrong):
                body = {**(fields or {}), **confirmation} or None
                status, answer = await ask(method, path, body)
                assert status == 403 and "password" in answer["error"], (method, path, answer)
        assert cluster.sign_in("boss", PASSWORD)  # the password was not changed
        assert await role_of("boss") == "admin"
        assert (await ask("PATCH", "/api/users/boss", {"role": "uploader", **own}))[0] == 200
        # Not an admin any more: no password needed, and a wrong one given is still wrong.
        assert (await ask("PATCH", "/api/users/boss", {"quota_bytes": 1000, **wrong}))[0] == 403
        assert (await ask("PATCH", "/api/users/boss", {"quota_bytes": 1000}))[0] == 200
        assert (await ask("PATCH", "/api/users/boss", {"role": "admin", **own}))[0] == 200
        # Both of two admins demoted at once: each change waits on a password check, and
        # both used to pass the last-admin check first, leaving no admin.
        both = await asyncio.gather(
            *(ask("PATCH", f"/api/users/{name}", {"role": "viewer", **own}) for name in ("boss", "admin"))
        )
        # One goes through; the other finds the last admin (400), or, when "admin" went
        # first, an asker who is no admin any more (403).
        statuses = sorted(status for status, _ in both)
        assert statuses[0] == 200 and statuses[1] in (400, 403), both
        # Whichever of the two is still an admin lists the accounts (the harness's own
        # "admin" may be the one demoted, and a viewer may not list them).
        roles: dict[str, str] = {}
        for token in (cluster.admin_token, cluster.sign_in("boss", PASSWORD)):
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "127.0.0.1"}
            async with http.get(f"{cluster.url}/api/users", headers=headers) as answer:
                if answer.status == 200:
                    roles = {user["name"]: user["role"] for user in (await answer.json())["users"]}
                    break
        assert "admin" in (roles.get("boss"), roles.get("admin")), roles


async def test_password_change_and_removal_end_sessions(cluster):
    """Changing an account's password revokes its tokens; removing the account too."""
    name = f"gone{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "uploader")
        token = cluster.sign_in(name, PASSWORD)
        async with http.get(f"{cluster.url}/api/me", headers=bearer(token)) as answer:
            assert (await answer.json())["user"]["name"] == name
        async with http.put(
            f"{cluster.url}/api/users/{name}/password",
            json={"password": "a brand new password"},
            headers=cluster.admin_headers(),
        ) as answer:
            assert answer.status == 200
        async with http.get(f"{cluster.url}/api/me", headers=bearer(token)) as answer:
            assert answer.status == 401
        token = cluster.sign_in(name, "a brand new password")
        async with http.delete(f"{cluster.url}/api/users/{name}", headers=cluster.admin_headers()) as answer:
            assert answer.status == 200
        async with http.get(f"{cluster.url}/api/me", headers=bearer(token)) as answer:
            assert answer.status == 401


async def patch_account(http, cluster, name: str, fields: dict) -> tuple[int, dict]:
    async with http.patch(
        f"{cluster.url}/api/users/{name}", json=fields, headers=cluster.admin_headers()
    ) as answer:
        return answer.status, await answer.json()


async def test_an_admin_changes_an_accounts_quota_and_role_at_once(cluster):
    """An admin raises a full account's quota and its next upload is stored; making it a
    viewer stops its uploads from its next request on, its session untouched; the last
    admin cannot be made anything else, and a bad field is 400 with a sentence."""
    name = f"grow{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "uploader", 10_000)
        headers = bearer(cluster.sign_in(name, PASSWORD))
        status, answer = await upload_as(http, cluster, headers, unique("big"), size=50_000)
        assert status == 413, answer
        status, answer = await patch_account(http, cluster, name, {"quota_bytes": 1_000_000})
        assert status == 200 and answer["user"]["quota_bytes"] == 1_000_000, answer
        status, answer = await upload_as(http, cluster, headers, unique("big"), size=50_000)
        assert status == 201, answer
        status, answer = await patch_account(http, cluster, name, {"role": "viewer"})
        assert status == 200 and answer["user"]["role"] == "viewer", answer
        assert answer["user"]["quota_bytes"] == 1_000_000  # what was not sent stays
        status, answer = await upload_as(http, cluster, headers, unique("refused"))
        assert status == 403, answer
        status, answer = await patch_account(http, cluster, "admin", {"role": "uploader"})
        assert status == 400 and "last admin" in answer["error"]
        for fields in (
            {},
            {"role": "owner"},
            {"quota_bytes": -5},
            {"quota_bytes": "lots"},
            {"colour": "red"},
        ):
            status, answer = await patch_account(http, cluster, name, fields)
            assert status == 400 and answer["error"], fields
        status, answer = await patch_account(
            http, cluster, f"nobody{uuid.uuid4().hex[:6]}", {"role": "viewer"}
        )
        assert status == 404 and answer["error"]


async def test_a_demoted_admin_loses_sight_of_private_videos_at_once(cluster, videos):
    """An admin watches another account's private video; once made a viewer, its very
    next request for it is a 404, though the web front end had just been told where the
    video's bytes were for that account (location_cache.py: a change of role made
    through the web forgets every such answer)."""
    name = f"adela{uuid.uuid4().hex[:6]}"
    own = {"current_password": ADMIN_PASSWORD}
    async with aiohttp.ClientSession() as http:
        fields = {"username": name, "password": PASSWORD, "role": "admin", **own}
        async with http.post(
            f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()
        ) as answer:
            assert answer.status == 201, await answer.text()
        headers = bearer(cluster.sign_in(name, PASSWORD))
        url = f"{cluster.url}/stream/{quote(videos['private'])}"
        async with http.get(url, headers=headers) as answer:
            assert answer.status == 200
        status, answer = await patch_account(http, cluster, name, {"role": "viewer", **own})
        assert status == 200 and answer["user"]["role"] == "viewer", answer
        async with http.get(url, headers=headers) as answer:
            assert answer.status == 404


async def test_a_removed_accounts_name_is_not_given_again_while_its_videos_stay(cluster):
    """A removed account's videos stay, owned by its name: an account made again under
    that name is refused (409, saying why) instead of getting the old one's private
    videos, until an admin deleted them."""
    name = f"left{uuid.uuid4().hex[:6]}"
    video = unique("left-behind")
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "uploader")
        status, _ = await upload_as(http, cluster, bearer(cluster.sign_in(name, PASSWORD)), video, "private")
        assert status == 201
        async with http.delete(f"{cluster.url}/api/users/{name}", headers=cluster.admin_headers()) as answer:
            assert answer.status == 200
        assert "still owns 1 video and 0 unfinished uploads," in await refused_account(http, cluster, name)
        async with http.delete(f"{cluster.url}/videos/{video}", headers=cluster.admin_headers()) as answer:
            assert answer.status == 200
        await add_user(http, cluster, name, "viewer")


async def test_adding_an_account_that_exists_and_owns_videos_says_it_exists(cluster):
    """Adding an account under the name of a live one that owns videos is refused as
    taken; it used to say a *removed* account of that name still owned them, and tell
    the admin to delete that live account's videos."""
    name = f"live{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "uploader")
        status, _ = await upload_as(
            http, cluster, bearer(cluster.sign_in(name, PASSWORD)), unique("own"), "public"
        )
        assert status == 201
        assert (
            await refused_account(http, cluster, name)
            == f"An account named \u201c{name}\u201d already exists."
        )


async def test_private_instance_needs_a_sign_in(fresh_cluster):
    """With --private, anonymous visitors reach only the sign-in page: pages redirect
    there, the API answers 401; signed in, everything works as usual."""
    cluster = fresh_cluster(datanodes=1, web_args=("--private",))
    async with aiohttp.ClientSession() as http:
        async with http.get(
            cluster.url + "/", headers={"Accept": "text/html"}, allow_redirects=False
        ) as answer:
            assert answer.status == 303 and answer.headers["Location"].startswith("/login")
        async with http.get(cluster.url + "/listar") as answer:
            assert answer.status == 401
        async with http.get(cluster.url + "/login") as answer:
            assert answer.status == 200
        async with http.get(cluster.url + "/listar", headers=cluster.admin_headers()) as answer:
            assert answer.status == 200


async def test_private_master_refuses_anonymous_requests_whatever_the_web(fresh_cluster):
    """A master started with --private refuses anonymous requests itself: behind a web
    front end started without --private, an anonymous listing or stream is 401, and a
    client talking to the master directly without an account is refused; signed-in
    requests are served as usual."""
    cluster = fresh_cluster(datanodes=2, master_args=("--private",))
    async with aiohttp.ClientSession() as http:
        status, answer = await upload_as(http, cluster, cluster.admin_headers(), "open.mp4")
        assert status == 201, answer
        for path in ("/listar", "/stream/open.mp4", "/api/status"):
            async with http.get(cluster.url + path) as answer:
                assert answer.status == 401, path
        async with http.get(cluster.url + "/stream/open.mp4", headers=cluster.admin_headers()) as answer:
            assert answer.status == 200
    anonymous = MasterClient(cluster.master.host, cluster.master.port, None)
    try:
        with pytest.raises(RequestFailed, match="private"):
            await anonymous.list_page(limit=1)
    finally:
        anonymous.close()


async def test_data_files_are_private_to_their_user(cluster):
    """Everything the master and datanodes wrote (index, blobs, checksums, the admin
    password) is 0600 in directories of 0700."""
    checked = 0
    for top in (cluster.root / "master", cluster.root / "datanodes"):
        for path in [top, *top.rglob("*")]:
            mode = path.stat().st_mode & 0o777
            assert mode & 0o077 == 0, (path, oct(mode))
            checked += 1
    assert checked > 5


async def test_errors_carry_a_request_id_and_no_internals(cluster):
    """Every answer carries an X-Request-Id, errors too."""
    async with aiohttp.ClientSession() as http, http.get(f"{cluster.url}/no/such/page") as answer:
        assert answer.status == 404 and len(answer.headers["X-Request-Id"]) == 16


async def test_look_alike_account_name_is_409_naming_the_existing_one(cluster):
    """Adding "adrnin" (r, n) beside "admin", or a full-width "ａｄｍｉｎ", is refused with
    409 and a sentence naming the existing account."""
    async with aiohttp.ClientSession() as http:
        for name in ("adrnin", "\uff41\uff44\uff4d\uff49\uff4e"):
            assert "\u201cadmin\u201d" in await refused_account(http, cluster, name)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/videos/{public}", '{"title": "cat \\ud800"}'),
        ("PATCH", "/videos/{public}", '{"description": "\\udfff"}'),
        ("POST", "/api/login", '{"username": "\\ud800", "password": "x"}'),
        ("POST", "/api/users", '{"username": "\\ud800", "password": "long enough pass", "role": "viewer"}'),
        (
            "PUT",
            "/api/users/admin/password",
            '{"password": "\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800"}',
        ),
    ],
)
async def test_json_with_a_lone_surrogate_is_400_not_500(cluster, videos, method, path, body):
    """JSON may escape half of a UTF-16 pair ("\\ud800"), which is no text at all: a title,
    name or password holding one is refused with a sentence (it was a 500 from every JSON
    route, the text failing on its way to the master), and nothing changes."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{cluster.url}{path.format(**videos)}",
            data=body.encode(),
            headers={"Content-Type": "application/json", **cluster.admin_headers()},
        ) as answer,
    ):
        assert answer.status == 400, await answer.text()
        assert "JSON" in (await answer.json())["error"]
    assert cluster.sign_in("admin", ADMIN_PASSWORD)


def test_a_username_typed_with_capitals_signs_in(cluster):
    """Account names are lower case, so "Admin" (a phone's keyboard capitalises the first
    letter) signs in as admin; it was "Wrong username or password."."""
    assert cluster.sign_in(" Admin", ADMIN_PASSWORD)


async def test_sign_in_form_sent_as_multipart_is_told_how_to_send_it(cluster):
    """`curl -F username=... -F password=...` to /login (multipart, which the sign-in page
    never sends) is answered 400 saying how to sign in, not 401 "Wrong username or
    password" for a right password, which also counted as a failed sign-in."""
    form = aiohttp.MultipartWriter("form-data")
    for name, value in (("username", "admin"), ("password", ADMIN_PASSWORD)):
        form.append(value).set_content_disposition("form-data", name=name)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{cluster.url}/login", data=form, allow_redirects=False) as answer,
    ):
        assert answer.status == 400
        assert "POST /api/login" in await answer.text()
        assert "myyoutube_session" not in answer.cookies


async def test_a_quota_past_64_bits_is_400_and_no_account_is_made(cluster):
    """A quota no 64-bit integer holds is refused with a sentence: it was answered 503 "the
    storage cluster is not answering" (the master failed to store it), as if to try again."""
    name = f"big{uuid.uuid4().hex[:6]}"
    fields = {"username": name, "password": PASSWORD, "role": "uploader", "quota_bytes": 10**30}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()
        ) as answer:
            assert answer.status == 400
            assert "quota_bytes" in (await answer.json())["error"]
        async with http.get(f"{cluster.url}/api/users", headers=cluster.admin_headers()) as answer:
            assert name not in [user["name"] for user in (await answer.json())["users"]]


async def test_a_private_video_page_tells_a_signed_out_visitor_to_sign_in(cluster, videos):
    """The owner of a private video who follows its link signed out is told it may be
    private and to sign in, not only "No video by that name", which reads as deleted."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{cluster.url}/watch/{quote(videos['private'])}") as answer,
    ):
        assert answer.status == 404
        assert "sign in to watch your own videos" in await answer.text()


async def test_a_token_of_raw_bytes_is_refused_not_a_500(cluster):
    """A bearer token or session cookie holding bytes that are not ASCII (no token of
    ours does) is a 401, or an anonymous visit for the cookie: it was a 500 on every
    address, the token failing on its way to the master."""
    for header, status in (
        (b"Authorization: Bearer \xe9\xe9", b"401"),
        (b"Cookie: myyoutube_session=\xe9\xe9", b"200"),
    ):
        reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
        writer.write(
            b"GET /api/me HTTP/1.1\r\nHost: " + cluster.web.address.encode() + b"\r\n" + header + b"\r\n\r\n"
        )
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.split()[1] == status, (header, status_line)


async def test_a_csrf_token_of_raw_bytes_is_refused_not_a_500(cluster):
    """A cookie session's request whose X-CSRF-Token holds bytes that are not ASCII is
    refused like any wrong token (403): it was a 500, the comparison failing to encode it."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        answer = await sign_in_form(http, cluster, "admin", ADMIN_PASSWORD)
        session = answer.cookies["myyoutube_session"].value
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(
        f"POST /api/logout HTTP/1.1\r\nHost: {cluster.web.address}\r\nOrigin: {cluster.url}\r\n"
        f"Cookie: myyoutube_session={session}\r\nContent-Length: 0\r\n".encode()
        + b"X-CSRF-Token: \xe9\xe9\r\n\r\n"
    )
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line


async def test_the_master_refuses_a_quota_past_64_bits_itself(cluster):
    """The master checks a quota's bound on its own (not every client is the web front
    end): past 2^63-1 it answers bad_request with a sentence, keeps the connection's
    peer served, and makes no account."""
    name = f"big{uuid.uuid4().hex[:6]}"
    client = cluster.client()
    try:
        with pytest.raises(RequestFailed) as refused:
            await client.add_user(name, PASSWORD, "uploader", quota_bytes=2**63)
        assert refused.value.code == "bad_request" and "2^63-1" in refused.value.message
        assert name not in [user["name"] for user in await client.list_users()]
    finally:
        client.close()


async def test_the_master_asks_for_the_current_password_only_for_ones_own(cluster):
    """The master itself (not only the web) refuses one's own password change without the
    current password or with a wrong one, code "refused" with a sentence, and keeps the old
    password; with the right one it changes it. An admin sets another account's password
    without knowing it, and changing the admin's own password asks the admin's too."""
    name = f"self{uuid.uuid4().hex[:6]}"
    admin = cluster.client()
    try:
        await admin.add_user(name, PASSWORD, "uploader", -1)
        own = admin.as_user(name)
        for current in ("", "not the password"):
            with pytest.raises(RequestFailed) as refused:
                await own.set_password(name, "a stolen session's pick", current)
            assert refused.value.code == "refused" and "current password" in refused.value.message
        cluster.sign_in(name, PASSWORD)  # still the old one
        await own.set_password(name, "the owner's new password", PASSWORD)
        cluster.sign_in(name, "the owner's new password")
        await admin.set_password(name, "set by the admin")
        cluster.sign_in(name, "set by the admin")
        with pytest.raises(RequestFailed) as refused:
            await admin.set_password("admin", "a stolen admin session's pick")
        assert refused.value.code == "refused"
    finally:
        admin.close()


async def test_changing_ones_own_password_over_http_takes_the_current_one(cluster):
    """PUT /api/users/NAME/password for one's own account: without current_password it is
    400 and with a wrong one 403, each with a sentence, and the password stays; with the
    right one it changes and every session of the account ends, the caller's too."""
    name = f"mine{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        await add_user(http, cluster, name, "viewer")
        token, other_session = cluster.sign_in(name, PASSWORD), cluster.sign_in(name, PASSWORD)
        url = f"{cluster.url}/api/users/{name}/password"
        for body, status in (
            ({"password": "new password here"}, 400),
            ({"password": "new password here", "current_password": "not it at all"}, 403),
            ({"password": "new password here", "current_password": 12}, 400),
        ):
            async with http.put(url, json=body, headers=bearer(token)) as answer:
                assert answer.status == status and "current" in (await answer.json())["error"], body
        body = {"password": "new password here", "current_password": PASSWORD}
        async with http.put(url, json=body, headers=bearer(token)) as answer:
            assert answer.status == 200 and (await answer.json()) == {"changed": name}
        for ended in (token, other_session):
            async with http.get(f"{cluster.url}/api/me", headers=bearer(ended)) as answer:
                assert answer.status == 401
        cluster.sign_in(name, "new password here")


async def test_the_account_page_changes_the_password_and_keeps_the_browser_signed_in(cluster):
    """GET /account sends a signed-out visitor to sign in, and shows a signed-in one their
    account. Its form refuses a wrong current password (403) and two new passwords that
    differ (400), in the page and without ending anything; with the right one the password
    changes, every other session ends, and the browser is signed in again with a fresh
    session and told so."""
    name = f"page{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await add_user(http, cluster, name, "viewer")
        other_session = cluster.sign_in(name, PASSWORD)
        async with http.get(f"{cluster.url}/account", allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/login?next=/account"
        assert (await sign_in_form(http, cluster, name, PASSWORD)).status == 303
        async with http.get(f"{cluster.url}/account") as page:
            html = await page.text()
            assert page.status == 200 and f'id="account-name">{name}<' in html
        form = {"csrf_token": html.split('name="csrf-token" content="')[1].split('"')[0]}

        async def change(current: str, new: str, again: str):
            fields = dict(form, current_password=current, new_password=new, new_password_again=again)
            async with http.post(
                f"{cluster.url}/account/password",
                data=fields,
                headers={"Origin": cluster.url},
                allow_redirects=False,
            ) as answer:
                return answer.status, await answer.text(), answer.headers.get("Location")

        status, html, _ = await change("not my password", "a new password", "a new password")
        assert status == 403 and "current password you typed is wrong" in html and 'role="alert"' in html
        status, html, _ = await change(PASSWORD, "a new password", "another new one")
        assert status == 400 and "differ" in html
        status, _, location = await change(PASSWORD, "a new password", "a new password")
        assert (status, location) == (303, "/account?changed=1")
        async with http.get(f"{cluster.url}/account?changed=1") as page:
            assert page.status == 200 and "Every other session of your account" in await page.text()
        async with http.get(f"{cluster.url}/api/me", headers=bearer(other_session)) as answer:
            assert answer.status == 401
        cluster.sign_in(name, "a new password")


async def test_the_longest_passwords_in_any_script_get_through_every_json_route(cluster):
    """A password of the most characters allowed (1024), each one outside the BMP (an emoji:
    12 bytes as JSON escapes it, as the command line sends it), can be given to an account,
    signed in with, and changed to another such one. Before, the 4 KiB bodies of these
    routes refused it: 400 "Send a JSON object" for the account, 413 for the sign-in."""
    name, first, second = f"moji{uuid.uuid4().hex[:6]}", "\U0001f600" * 1024, "\U0001f601" * 1024
    async with aiohttp.ClientSession() as http:
        fields = {"username": name, "password": first, "role": "viewer"}
        async with http.post(
            f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()
        ) as answer:
            assert answer.status == 201, await answer.text()
        async with http.put(
            f"{cluster.url}/api/users/{name}/password",
            json={"password": second, "current_password": first},
            headers=bearer(cluster.sign_in(name, first)),
        ) as answer:
            assert answer.status == 200, await answer.text()
        assert cluster.sign_in(name, second)


async def test_an_account_request_past_its_size_is_413_saying_so(cluster, http):
    """A body larger than an account request can be is 413 with its limit, not 400 "Send
    a JSON object with ...", which blamed a well-formed object for its size."""
    fields = {"username": "big", "password": "x" * 40_000, "role": "viewer"}
    async with http.post(f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()) as answer:
        assert answer.status == 413
        assert "at most 32 KiB" in (await answer.json())["error"]
