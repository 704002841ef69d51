"""The guard on every URL that comes from outside (issue 17): what a remote may make this node call.

A URL a remote hands us (a subscription's callback, an A2A push config, an endpoint learned from a directory or
an agent card) is accepted when

- its origin (scheme, host, port) is one an admin vouched for: the origin of that remote's declared endpoint
  (which is also how nodes on one machine keep working in development and tests), or
- it passes every public-address check: `https` only; the host, whatever its spelling (a name, `127.1`,
  `2130706433`, `0177.0.0.1`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]`), resolves only to public addresses; and the
  host is in the remote's `allowed_hosts` when the config gives that list.

A public URL is checked again when the connection is made, against the address actually connected to
(`GuardedAdapter`): DNS rebinding cannot switch a name to an internal address after the check. Redirects are
never followed (remotes/client.py). Nothing here imports Django, so the client and its tests stay plain.

    guard = UrlGuard(vouched=frozenset({origin("http://127.0.0.1:8001/api/v1")}))
    guard.check("http://127.0.0.1:8001/api/v1/webhooks/cross-repo")  # True: vouched
    guard.check("https://hooks.example.com/x")  # False: public, checked again at connect time
    guard.check("http://169.254.169.254/latest/meta-data/")  # UrlRefused
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(ValueError):
    """A URL this node will not call; `str()` says why, for the 400 (or the delivery row's last error)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (getaddrinfo). Tests replace this module attribute with their own
    resolver (a name mapped to 127.0.0.1), so no test needs a real DNS answer."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"{host} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def origin(url: str) -> str:
    """`scheme://host:port` of `url`, lower case, with the default port filled in ("" when it has no host)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if not host or port is None:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, in any spelling the C resolver accepts (`127.1`, `2130706433`,
    `0177.0.0.1`, `0x7f.1`, `::ffff:7f00:1`), or None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()):
        try:  # inet_aton is what getaddrinfo uses for the old BSD spellings; a name like "fade.cafe" fails it
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public one ("a loopback address", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = refusal(mapped)
            return f"an IPv4-mapped form of {mapped}, {inner}" if inner else None
    for test, name in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "the unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_site_local", "a site-local address"),
    ):
        if getattr(address, test, False):
            return name
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.IPv6Network("fc00::/7"):
        return "a unique-local address"
    for test, name in (("is_private", "a private address"),):
        if getattr(address, test, False):
            return name
    if not address.is_global:  # 100.64.0.0/10 (carrier-grade NAT) and the like
        return "not a public address"
    return None


def check_public_address(address: str) -> None:
    """UrlRefused unless `address` (an IP, as resolved) is public."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    why = refusal(parsed)
    if why:
        raise UrlRefused(f"{address} is {why}")


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses of `host`, all of them public (resolved through `resolve`), or UrlRefused."""
    literal = ip_literal(host)
    addresses = [str(literal)] if literal is not None else resolve(host, port)
    if not addresses:
        raise UrlRefused(f"{host} does not resolve")
    for address in addresses:
        try:
            check_public_address(address)
        except UrlRefused as exc:
            raise UrlRefused(f"{host} resolves to {exc}" if literal is None else str(exc)) from None
    return addresses


@dataclass(frozen=True)
class UrlGuard:
    """The rules for the URLs one remote hands us. `vouched`: origins (see `origin`) an admin declared;
    `vouched_hosts`: hosts whose every port is vouched (a directory's own host); `allowed_hosts`: when not empty,
    the only hosts a public URL may name (the remote's `allowed_hosts` in the config)."""

    vouched: frozenset[str] = frozenset()
    vouched_hosts: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_endpoints(
        cls, endpoints: Iterable[str], *, allowed_hosts: Iterable[str] = (), vouched_hosts: Iterable[str] = ()
    ) -> UrlGuard:
        return cls(
            vouched=frozenset(o for o in map(origin, endpoints) if o),
            vouched_hosts=frozenset(h.lower() for h in vouched_hosts),
            allowed_hosts=frozenset(h.lower().rstrip(".") for h in allowed_hosts),
        )

    def check(self, url: str) -> bool:
        """True when `url`'s origin is vouched for, False when it passed the public-address checks (the caller
        must then connect through a `GuardedAdapter`); UrlRefused (its reason) otherwise."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise UrlRefused(f"{url[:200]!r} is not an http(s) URL")
        try:
            host, port = (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise UrlRefused("the port is not a number from 0 to 65535") from None
        if not host:
            raise UrlRefused("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused("credentials in the URL are refused (send them as callback_auth)")
        if origin(url) in self.vouched or host in self.vouched_hosts:
            return True
        if scheme != "https":
            raise UrlRefused(
                f"http:// is only accepted on the origin of the remote's declared endpoint; use https://{host}"
            )
        if ip_literal(host) is not None:  # an internal address is the reason to give, whatever the allow-list
            public_addresses(host, port)
        if self.allowed_hosts and host.rstrip(".") not in self.allowed_hosts:
            raise UrlRefused(f"{host} is not in this remote's allowed_hosts ({', '.join(sorted(self.allowed_hosts))})")
        public_addresses(host, port)
        return False


# --- connect time ---------------------------------------------------------------------------------------------


class _GuardedConnectionMixin:
    """Resolve, check every address, and connect to a checked one: what the check saw is what is connected to.
    TLS still verifies the certificate against the name (urllib3 uses `host` for SNI and matching, `_dns_host`
    only for the TCP connection)."""

    host: str
    port: int
    _dns_host: str

    def _new_conn(self):  # type: ignore[no-untyped-def]
        addresses = public_addresses(self._dns_host, self.port)
        self._dns_host = addresses[0]
        return super()._new_conn()  # type: ignore[misc]


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to public addresses, checked when they are made."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
