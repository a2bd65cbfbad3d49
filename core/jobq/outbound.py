"""Outbound HTTP policy: keep user-supplied URLs away from internal networks (SSRF guard).

A URL is checked *after* DNS resolution: every address a host resolves to must be public,
unless the host or the address is on the operator's allow-list (``JOBQ_OUTBOUND_ALLOWLIST``).
Checking a URL and then letting the HTTP client resolve it again would leave a window for DNS
rebinding, so :func:`http_client` and :func:`async_http_client` resolve each hostname once,
check every address and connect to that pinned address themselves (an httpcore network backend
wrapper). TLS SNI, certificate checks and the ``Host`` header keep the hostname. Every
connection goes through the check, so each redirect hop is covered; redirects are off anyway
unless the caller asks for them.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import attrs
import httpcore
import httpx

from . import tracing
from .errors import ConfigError, JobFailed, UnrecoverableError

ALLOWLIST_ENV = "JOBQ_OUTBOUND_ALLOWLIST"
PORTS_ENV = "JOBQ_OUTBOUND_PORTS"
DEFAULT_PORTS = frozenset({80, 443, 8080, 8443})
DEFAULT_TIMEOUT = 10.0
DNS_CACHE_SECONDS = 60.0
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, ECS task metadata, AWS IPv6).
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254"))
# What glibc's inet_aton accepts: decimal, octal and hex parts, 1 to 4 of them ("2130706433", "0x7f.1").
_NUMERIC_HOST = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?")
_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?")

_dns_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="jobq-dns")


class DestinationNotAllowed(UnrecoverableError):
    """The URL or host points somewhere the outbound policy refuses (never retried).

    The message names the host and the reason, never the URL's path or query, which may hold tokens.
    """

    code = "ERR_DESTINATION_NOT_ALLOWED"

    def __init__(self, message: str, *, host: str = "", address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class ResolutionFailed(JobFailed):
    """A hostname did not resolve (retried: DNS failures are often transient)."""

    code = "ERR_DNS_FAILED"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve like the OS does (``getaddrinfo``), addresses in the order it prefers them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, read the way the OS would (``0x7f.1`` is 127.0.0.1)."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h.rstrip(".")))
        except OSError:
            return None
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why an address is not a public destination, or ``None`` when it is."""
    if ip in _METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = refusal_reason(inner)
            return f"an IPv6 address embedding {reason}" if reason else None
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a carrier-grade NAT address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "a non-global address"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


def describe_url(url: str | httpx.URL) -> str:
    """A URL safe to log or return: scheme, host and port; path, query and userinfo withheld.

    Webhook URLs (Slack's above all) carry their token in the path.
    """
    try:
        u = httpx.URL(str(url))
    except Exception:  # any unparsable input is described the same way
        return "<invalid url>"
    if not u.host:
        return "<invalid url>"
    host = f"[{u.host}]" if ":" in u.host else u.host
    port = f":{u.port}" if u.port else ""
    path = "/…" if u.raw_path not in (b"", b"/") else "/"
    return f"{u.scheme}://{host}{port}{path}"


def _parse_ports(raw: str) -> frozenset[int] | None:
    if raw.strip() in ("*", ""):
        return None
    try:
        ports = frozenset(int(p) for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise ConfigError(f"{PORTS_ENV}={raw!r} must be a comma-separated list of ports or '*'") from exc
    if not all(0 < p < 65536 for p in ports):
        raise ConfigError(f"{PORTS_ENV}={raw!r} holds a port outside 1-65535")
    return ports


def _parse_allowlist(raw: str) -> tuple[frozenset[str], tuple[Network, ...]]:
    hosts: set[str] = set()
    nets: list[Network] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = item.lower().rstrip(".")
        if not _HOSTNAME.fullmatch(name):
            raise ConfigError(f"{ALLOWLIST_ENV}: {item!r} is neither a hostname nor an address/CIDR")
        hosts.add(name)
    return frozenset(hosts), tuple(nets)


@attrs.frozen(kw_only=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach.

    :param allow_hosts: hostnames admitted whatever they resolve to (``*.corp.example`` matches
        subdomains); for tests and on-premises targets.
    :param allow_networks: addresses/CIDRs admitted even when private. A cloud metadata address is
        only admitted by an entry naming exactly that address.
    :param allow_ports: ports HTTP requests may use on public destinations (allow-listed hosts and
        networks may use any); ``None`` admits every port.
    :param resolver: ``(host, port) -> [address, ...]``; the OS resolver by default (tests inject one).
    :param resolve_timeout: seconds a DNS lookup may take.
    """

    allow_hosts: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    allow_networks: tuple[Network, ...] = attrs.field(default=(), converter=tuple)
    allow_ports: frozenset[int] | None = DEFAULT_PORTS
    resolver: Resolver = attrs.field(default=system_resolver, eq=False, repr=False)
    resolve_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **kw: Any) -> OutboundPolicy:
        """The operator's policy: ``JOBQ_OUTBOUND_ALLOWLIST`` lists hostnames or CIDRs, comma-separated;
        ``JOBQ_OUTBOUND_PORTS`` the HTTP ports for public hosts (default 80,443,8080,8443; ``*`` for any).
        """
        e = os.environ if env is None else env
        hosts, nets = _parse_allowlist(e.get(ALLOWLIST_ENV, ""))
        if PORTS_ENV in e and "allow_ports" not in kw:
            kw["allow_ports"] = _parse_ports(e[PORTS_ENV])
        return cls(allow_hosts=hosts, allow_networks=nets, **kw)

    def host_allowed(self, host: str) -> bool:
        """Whether the hostname itself is on the allow-list."""
        name = host.lower().rstrip(".")
        if name in self.allow_hosts:
            return True
        return any(p.startswith("*.") and name.endswith(p[1:]) for p in self.allow_hosts)

    def is_listed(self, host: str) -> bool:
        """Whether the operator allow-listed this host itself: by name, or as an address (any
        spelling) inside an allow-listed network. Callers use it to relax their own host rules."""
        if self.host_allowed(host):
            return True
        ip = _literal(host)
        return ip is not None and any(ip.version == n.version and ip in n for n in self.allow_networks)

    def address_allowed(self, address: str | IPAddress, host: str = "") -> bool:
        """Whether a connection to ``address`` (resolved from ``host``) is admitted."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if ip in _METADATA:
            return any(n.num_addresses == 1 and ip in n for n in self.allow_networks)
        if ip.is_unspecified:
            return False
        if refusal_reason(ip) is None:
            return True
        if host and self.host_allowed(host):
            return True
        return any(ip.version == n.version and ip in n for n in self.allow_networks)

    def check_port(self, port: int, host: str, addresses: list[str]) -> None:
        """Refuse an HTTP port outside ``allow_ports`` unless the destination is allow-listed."""
        if self.allow_ports is None or port in self.allow_ports or self.host_allowed(host):
            return
        ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if ips and all(any(ip in n for n in self.allow_networks) for ip in ips):
            return
        raise DestinationNotAllowed(f"port {port} of host {host!r} is not an allowed HTTP port "
                                    f"(allowed: {', '.join(map(str, sorted(self.allow_ports)))}; "
                                    f"set {PORTS_ENV} or allow-list the host)", host=host)

    def check_address(self, address: str, host: str) -> None:
        """Raise :class:`DestinationNotAllowed` unless ``address`` may be reached for ``host``."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not self.address_allowed(ip, host):
            reason = refusal_reason(ip) or "an address the policy refuses"
            raise DestinationNotAllowed(f"host {host!r} resolves to {reason} ({ip}), which is not allowed "
                                        f"(allow-list it with {ALLOWLIST_ENV} if intended)",
                                        host=host, address=str(ip))

    def check_syntax(self, url: str | httpx.URL) -> httpx.URL:
        """The parsed URL if its scheme and form are acceptable (no DNS lookup)."""
        try:
            u = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
        except Exception as exc:  # httpx raises several types for bad URLs
            raise DestinationNotAllowed("the URL cannot be parsed") from exc
        if u.scheme not in ("http", "https"):
            raise DestinationNotAllowed(f"scheme {u.scheme!r} is not allowed (only http and https)",
                                        host=u.host)
        if not u.host:
            raise DestinationNotAllowed("the URL has no host")
        if u.userinfo:
            raise DestinationNotAllowed(f"URLs with credentials before the host are refused "
                                        f"(host {u.host!r})", host=u.host)
        return u

    def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and return its addresses, all of them checked, to connect to.

        Raises :class:`DestinationNotAllowed` if any address is refused (a mixed answer is a
        rebinding trick as often as not), :class:`ResolutionFailed` if the name does not resolve.
        """
        host = host.strip("[]")
        literal = _literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            fut = _dns_pool.submit(self.resolver, host, port)
            try:
                addresses = list(fut.result(timeout=self.resolve_timeout))
            except concurrent.futures.TimeoutError as exc:
                raise ResolutionFailed(f"resolving {host!r} timed out") from exc
            except OSError as exc:
                raise ResolutionFailed(f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
        if not addresses:
            raise ResolutionFailed(f"{host!r} resolved to no address")
        for address in addresses:
            self.check_address(address, host)
        return addresses

    def check_url(self, url: str | httpx.URL) -> list[str]:
        """Refuse a URL the policy does not admit; return the checked addresses of its host."""
        u = self.check_syntax(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        addresses = self.resolve(u.host, port)
        self.check_port(port, u.host, addresses)
        return addresses


class _PinningCache:
    """Resolutions per hostname for one client, so later connections reuse the checked addresses."""

    def __init__(self, policy: OutboundPolicy, ttl: float) -> None:
        self.policy = policy
        self.ttl = ttl
        self._entries: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def lookup(self, host: str) -> list[str] | None:
        with self._lock:
            entry = self._entries.get(host)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def store(self, host: str, addresses: list[str]) -> None:
        with self._lock:
            if len(self._entries) > 1024:
                self._entries.clear()
            self._entries[host] = (time.monotonic() + self.ttl, addresses)

    def resolve(self, host: str, port: int) -> list[str]:
        cached = self.lookup(host)
        if cached is not None:
            return cached
        try:
            addresses = self.policy.resolve(host, port)
        except ResolutionFailed as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        self.store(host, addresses)
        return addresses


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses of a host instead of letting the socket layer resolve it."""

    def __init__(self, cache: _PinningCache, inner: httpcore.NetworkBackend) -> None:
        self._cache = cache
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = self._cache.resolve(host, port)
        self._cache.policy.check_port(port, host, addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                               socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise DestinationNotAllowed("unix sockets are not allowed for outbound requests")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncPinnedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of :class:`_PinnedBackend`; DNS runs in a worker thread."""

    def __init__(self, cache: _PinningCache, inner: httpcore.AsyncNetworkBackend) -> None:
        self._cache = cache
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = self._cache.lookup(host)
        if addresses is None:
            addresses = await anyio.to_thread.run_sync(self._cache.resolve, host, port)
        self._cache.policy.check_port(port, host, addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise DestinationNotAllowed("unix sockets are not allowed for outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.lru_cache(maxsize=16)
def _shared_ssl_context(verify: str | bool, http2: bool) -> ssl.SSLContext:
    # Loading the CA bundle takes tens of ms per context (80 ms measured); a client per job paid it each time.
    # Keyed on http2 too, because httpcore sets the ALPN list on the context for each connection.
    return httpx.create_ssl_context(verify=verify, trust_env=False)


def _pool_kwargs(verify: ssl.SSLContext | str | bool, cert: Any, http1: bool, http2: bool,
                 limits: httpx.Limits) -> dict[str, Any]:
    if cert is None and isinstance(verify, str | bool):
        ssl_context = _shared_ssl_context(verify, http2)
    else:
        ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=False)
    return dict(ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry, http1=http1, http2=http2)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection is resolved, checked and pinned by a policy."""

    def __init__(self, policy: OutboundPolicy, *, verify: ssl.SSLContext | str | bool = True,
                 cert: Any = None, http1: bool = True, http2: bool = False,
                 limits: httpx.Limits = DEFAULT_LIMITS, dns_ttl: float = DNS_CACHE_SECONDS) -> None:
        # HTTPTransport.__init__ only builds ``_pool``; ours replaces it, with the pinning backend.
        self.policy = policy
        backend = _PinnedBackend(_PinningCache(policy, dns_ttl), httpcore.SyncBackend())
        self._pool = httpcore.ConnectionPool(network_backend=backend,
                                             **_pool_kwargs(verify, cert, http1, http2, limits))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_syntax(request.url)
        if tracing.TRACER is None:
            return super().handle_request(request)
        span = tracing.start_client(request.method, str(request.url), request.url.host)
        try:
            response = super().handle_request(request)
        except BaseException as exc:
            tracing.end(span, exc)
            raise
        _end_client(span, response)
        return response


class AsyncPinnedTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`PinnedTransport`."""

    def __init__(self, policy: OutboundPolicy, *, verify: ssl.SSLContext | str | bool = True,
                 cert: Any = None, http1: bool = True, http2: bool = False,
                 limits: httpx.Limits = DEFAULT_LIMITS, dns_ttl: float = DNS_CACHE_SECONDS) -> None:
        self.policy = policy
        backend = _AsyncPinnedBackend(_PinningCache(policy, dns_ttl), httpcore.AnyIOBackend())
        self._pool = httpcore.AsyncConnectionPool(network_backend=backend,
                                                  **_pool_kwargs(verify, cert, http1, http2, limits))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_syntax(request.url)
        if tracing.TRACER is None:
            return await super().handle_async_request(request)
        span = tracing.start_client(request.method, str(request.url), request.url.host)
        try:
            response = await super().handle_async_request(request)
        except BaseException as exc:
            tracing.end(span, exc)
            raise
        _end_client(span, response)
        return response


def _end_client(span: Any, response: httpx.Response) -> None:
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, str(response.status_code)))
    span.end()


class _UrlLogFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; webhook URLs carry their token in the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2 and isinstance(record.args[1], httpx.URL):
            record.args = (record.args[0], describe_url(record.args[1]), *record.args[2:])
        return True


_log_filter = _UrlLogFilter()


def _hide_urls_in_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if _log_filter not in logger.filters:
        logger.addFilter(_log_filter)


_TRANSPORT_KW = ("verify", "cert", "http1", "http2", "limits", "dns_ttl")
_REFUSED_KW = ("transport", "mounts", "proxy", "trust_env", "app")


def _split(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    for name in _REFUSED_KW:
        if name in kw:
            raise TypeError(f"{name}= would bypass the outbound policy and is not accepted")
    transport_kw = {k: kw.pop(k) for k in _TRANSPORT_KW if k in kw}
    return transport_kw, kw


def http_client(policy: OutboundPolicy | None = None, timeout: float = DEFAULT_TIMEOUT,
                **kw: Any) -> httpx.Client:
    """An ``httpx.Client`` that only reaches destinations ``policy`` admits.

    :param policy: defaults to :meth:`OutboundPolicy.from_env`.
    :param timeout: seconds for connect, read, write and pool waits.
    The ``httpx`` logger shows these clients' URLs as ``scheme://host/…`` (paths hold tokens).

    :param kw: other ``httpx.Client`` arguments (``verify``, ``http2`` and ``limits`` go to the
        transport); proxies and custom transports are refused, environment proxies ignored.
        ``follow_redirects`` stays off unless passed; each hop is then checked.
    """
    transport_kw, client_kw = _split(dict(kw))
    policy = policy or OutboundPolicy.from_env()
    _hide_urls_in_httpx_log()
    return httpx.Client(transport=PinnedTransport(policy, **transport_kw), timeout=timeout,
                        trust_env=False, **client_kw)


def async_http_client(policy: OutboundPolicy | None = None, timeout: float = DEFAULT_TIMEOUT,
                      **kw: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that only reaches destinations ``policy`` admits (see :func:`http_client`)."""
    transport_kw, client_kw = _split(dict(kw))
    policy = policy or OutboundPolicy.from_env()
    _hide_urls_in_httpx_log()
    return httpx.AsyncClient(transport=AsyncPinnedTransport(policy, **transport_kw), timeout=timeout,
                             trust_env=False, **client_kw)
