"""X-Forwarded-For, -Proto and -Host from trusted reverse proxies only, and a well-formed Host.

Uvicorn's own proxy support is off (`proxy_headers=False` in `__main__`): once it has replaced
the client address, nothing after it can tell whether the peer was a trusted proxy, and only a
trusted proxy may choose the host that `Location` and `Link` are built from.
"""

import re
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.api.problems import problem_response

ProxyNetwork = IPv4Network | IPv6Network

_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PROTO = b"x-forwarded-proto"
_FORWARDED_HOST = b"x-forwarded-host"
_FORWARDED = (_FORWARDED_FOR, _FORWARDED_PROTO, _FORWARDED_HOST)
_SCHEMES = {b"http": "http", b"https": "https"}

# host[:port]: a DNS name (with `_`, which internal names use), an IPv4 address or a bracketed
# IPv6 literal. Anything else (`/`, `@`, `,`, `;`, spaces, quotes) would change where a
# Location or Link header built from it points, or split the Link header.
_HOST = re.compile(
    rb"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_BAD_HOST = (
    "The Host header (or a trusted proxy's X-Forwarded-Host) must be one host[:port], "
    "such as api.example.com or 127.0.0.1:8000."
)


def trusted_proxies(value: str) -> tuple[ProxyNetwork, ...]:
    """FORWARDED_ALLOW_IPS as networks: comma-separated addresses, CIDR networks or `*` (any)."""
    networks: list[ProxyNetwork] = []
    for item in (part.strip() for part in value.split(",")):
        if item == "*":
            networks += [ip_network("0.0.0.0/0"), ip_network("::/0")]
        elif item:
            try:
                networks.append(ip_network(item))
            except ValueError:
                # Uvicorn would keep it as a name that no peer address ever equals.
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {item!r} is not an IP address, a CIDR network or *"
                ) from None
    return tuple(networks)


def _last(lines: list[bytes]) -> bytes:
    """The last element of a comma-separated header: the one the nearest proxy set."""
    return b",".join(lines).rsplit(b",", 1)[-1].strip()


def _address(entry: str) -> tuple[str, int]:
    """An X-Forwarded-For entry (`a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]:port`); port 0: none."""
    host, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and (":" not in host or host.startswith("[")):
        return host.strip("[]"), int(port)
    return entry.strip("[]"), 0


class ForwardedHeadersMiddleware:
    """Applies a trusted peer's X-Forwarded-* to the scope; 400 for a malformed or repeated Host."""

    def __init__(self, app: ASGIApp, trusted: tuple[ProxyNetwork, ...]) -> None:
        self.app = app
        self.trusted = trusted
        # Most lists are single addresses (the default is 127.0.0.1): a string lookup then
        # decides most peers without parsing an address on every request.
        self._exact = frozenset(str(n.network_address) for n in trusted if n.num_addresses == 1)
        self._only_exact = all(n.num_addresses == 1 for n in trusted)

    def _trusts_peer(self, host: str) -> bool:
        if host in self._exact:
            return True
        if self._only_exact and not host.startswith("::ffff:"):
            return False  # the server reports its peer in canonical form, as str() spells it
        return self._trusts(host)

    def _trusts(self, host: str) -> bool:
        try:
            address = ip_address(host)
        except ValueError:
            return False
        # An IPv4 peer of a dual-stack socket arrives as ::ffff:a.b.c.d.
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            return any(address.ipv4_mapped in network for network in self.trusted)
        return any(address in network for network in self.trusted)

    def _client(self, forwarded_for: list[bytes]) -> tuple[str, int] | None:
        joined = b",".join(forwarded_for).decode("latin-1")
        entries = [entry.strip() for entry in joined.split(",") if entry.strip()]
        # Each proxy appends the address it received the request from, so the rightmost entry
        # not added by a trusted proxy is the client; anything left of it the client wrote.
        for entry in reversed(entries):
            host, port = _address(entry)
            if not self._trusts(host):
                return host, port
        return _address(entries[0]) if entries else None

    def _apply_forwarded(self, scope: Scope) -> None:
        # In place, as uvicorn's proxy support did: the middleware around this one (the
        # request log) sees the client as the proxy reported it.
        lines: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in _FORWARDED:
                lines.setdefault(name, []).append(value)
        scheme = _SCHEMES.get(_last(lines.get(_FORWARDED_PROTO, [])).lower())
        if scheme is not None:
            scope["scheme"] = scheme
        host = _last(lines.get(_FORWARDED_HOST, []))
        if host:
            # Starlette builds request URLs from the Host header.
            others = [(name, value) for name, value in scope["headers"] if name != b"host"]
            scope["headers"] = [*others, (b"host", host)]
        client = self._client(lines.get(_FORWARDED_FOR, []))
        if client is not None:
            scope["client"] = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        if peer is not None and self._trusts_peer(peer[0]):
            self._apply_forwarded(scope)
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        # RFC 9112 §3.2: 400 for more than one Host line or an invalid one. No Host at all
        # (HTTP/1.0) leaves Starlette to use the server's address.
        if len(hosts) > 1 or (hosts and not _HOST.fullmatch(hosts[0])):
            await problem_response(400, _BAD_HOST)(scope, receive, send)
            return
        await self.app(scope, receive, send)
