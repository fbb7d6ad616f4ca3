"""Which Host a request may name and which requests count as same-origin (pure, no I/O).

Theory of operation
-------------------
DNS rebinding: a page on `evil.example` makes its name resolve to 127.0.0.1, and the
browser then lets that page's scripts talk to a loopback-only MyYoutube as if it were
evil.example's own server. Every such request still says `Host: evil.example`, so the
front end answers only Hosts it is known by: the host and port of `--public-url`, or by
default the address it is bound to, plus the loopback names on its port (a rebinding
attack can only ever produce its own name, never `localhost` or an IP literal). A front
end bound to a wildcard address (0.0.0.0, ::) without `--public-url` is reached by
whatever IP its clients use, so there any IP literal on its port is accepted.

Cross-site request forgery: a state-changing request made with a session cookie must
come from our own pages. Browsers say where a request comes from in `Origin` (on every
cross-origin request and every POST/PUT/PATCH/DELETE) and `Sec-Fetch-Site`; a request
naming another origin, or a cookie-carrying one naming neither (an old browser, or a
client that strips them), is refused. Bearer tokens are exempt: browsers never attach
them on their own. (The per-session CSRF token, checked as well, is auth.py's.)
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from myyoutube.service import is_wildcard

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Sec-Fetch-Site values a same-origin state change may carry: "none" is a request the
# user made directly (typed or bookmarked), which no other site can cause.
SAME_ORIGIN_FETCH_SITES = ("same-origin", "none")


class BadPublicUrl(ValueError):
    pass


def _host_port(netloc_host: str, port: int) -> str:
    host = netloc_host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal as it appears in a Host header
    return f"{host}:{port}"


def public_origin(public_url: str) -> tuple[str, str]:
    """(scheme, host:port) of a `--public-url`; BadPublicUrl if it is not an http(s) URL."""
    parts = urlsplit(public_url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise BadPublicUrl(f"expected a URL like https://videos.example.org, got {public_url!r}")
    return parts.scheme, _host_port(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])


def allowed_hosts(public_url: str | None, bound_host: str, port: int) -> frozenset[str]:
    """Every `host:port` a request's Host header may name (lower case, port explicit)."""
    hosts = {_host_port(name.strip("[]"), port) for name in LOOPBACK_NAMES}
    if public_url is not None:
        hosts.add(public_origin(public_url)[1])
    elif not is_wildcard(bound_host):
        hosts.add(_host_port(bound_host, port))
    return frozenset(hosts)


def normal_host(host_header: str, scheme: str) -> str:
    """A Host header as `host:port` in lower case (the scheme's port if it names none)."""
    host = host_header.strip().lower()
    if host.endswith("]") or ":" not in host:
        return f"{host}:{DEFAULT_PORTS.get(scheme, 80)}"
    if host.count(":") > 1 and not host.startswith("["):
        return f"[{host}]:{DEFAULT_PORTS.get(scheme, 80)}"  # a bare IPv6 literal
    return host


def host_allowed(
    host_header: str | None, scheme: str, allowed: frozenset[str], any_ip_port: int | None
) -> bool:
    """Does this Host header name this front end?"""
    if not host_header:
        return False
    host = normal_host(host_header, scheme)
    if host in allowed:
        return True
    if any_ip_port is None:
        return False
    name, _, port = host.rpartition(":")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return port == str(any_ip_port)


def cross_origin_reason(
    origin: str | None,
    fetch_site: str | None,
    scheme: str,
    host_header: str,
    cookie_session: bool,
    public_url: str | None = None,
) -> str | None:
    """Why a state-changing request must be refused as cross-origin, or None if it is
    same-origin. `scheme` and `host_header` are where the request was sent; an `origin`
    that is the `--public-url`'s is ours too, whatever Host a reverse proxy passed on
    (nginx sends its upstream's, 127.0.0.1:8080, unless told otherwise)."""
    if fetch_site is not None and fetch_site.lower() not in SAME_ORIGIN_FETCH_SITES:
        return "This request came from another site; it was refused."
    if origin is not None:
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            return "This request came from an unknown origin; it was refused."
        sent_from = _host_port(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
        if public_url is not None and (parts.scheme, sent_from) == public_origin(public_url):
            return None
        if parts.scheme != scheme or sent_from != normal_host(host_header, scheme):
            return "This request came from another site; it was refused."
        return None
    if fetch_site is None and cookie_session:
        return "This browser did not say where the request came from; it was refused."
    return None
