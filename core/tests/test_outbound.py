"""The outbound policy against real sockets on loopback: refused spellings, pinning, redirects, TLS."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jobq import UnrecoverableError
from jobq.errors import ConfigError
from jobq.outbound import (
    DestinationNotAllowed,
    OutboundPolicy,
    ResolutionFailed,
    async_http_client,
    describe_url,
    http_client,
    refusal_reason,
)
from jobq.testing import Canary

ALLOWED_IP = "127.0.0.2"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        srv = self.server
        srv.seen.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        redirect = srv.redirect_to  # type: ignore[attr-defined]
        if redirect and self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", redirect)
            self.send_header("Content-Length", "0")
        else:
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, port), _Handler)
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to = ""
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def pair() -> Iterator[tuple[Server, Canary]]:
    """An allowed server on 127.0.0.2 and a canary on 127.0.0.1 listening on the same port."""
    for _ in range(20):
        server = Server(ALLOWED_IP)
        try:
            canary = Canary(server.port)
        except OSError:
            server.close()
            continue
        break
    else:
        pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")
    yield server, canary
    server.close()
    canary.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


SPELLINGS = ["127.0.0.1", "2130706433", "0x7f.1", "017700000001", "0x7f000001", "127.1", "localhost",
             "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "0"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_loopback_spellings_never_reach_the_canary(host: str, canary: Canary) -> None:
    policy = OutboundPolicy()
    url = f"http://{host}:{canary.port}/x"
    with pytest.raises(DestinationNotAllowed) as err:
        policy.check_url(url)
    assert err.value.code == "ERR_DESTINATION_NOT_ALLOWED"
    assert isinstance(err.value, UnrecoverableError) and not err.value.retryable
    with http_client(policy) as client, pytest.raises(DestinationNotAllowed):
        client.get(url)
    assert canary.accepted == 0


@pytest.mark.parametrize("address", [
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.1.1", "100.64.0.1",
    "100.127.255.254", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "0.0.0.0",
    "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "2002:a00:1::1", "64:ff9b::a00:1", "2001:db8::1",
])
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None
    policy = OutboundPolicy(resolver=lambda host, port: [address])
    with pytest.raises(DestinationNotAllowed) as err:
        policy.check_url("https://hook.example.com/path/secret-token")
    assert "secret-token" not in str(err.value)
    assert err.value.address == str(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::6810:85e5", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    policy = OutboundPolicy(resolver=lambda host, port: [address])
    assert policy.check_url("https://hook.example.com/x") == [address]


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/",
                                 "http://user:pw@example.com/", "http://example.com@127.0.0.1/", "http:///x"])
def test_bad_urls_are_refused_before_any_lookup(url: str) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("no DNS lookup expected")

    with pytest.raises(DestinationNotAllowed) as err:
        OutboundPolicy(resolver=resolver).check_url(url)
    assert "pw" not in str(err.value)


def test_every_resolved_address_must_pass() -> None:
    policy = OutboundPolicy(resolver=lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(DestinationNotAllowed, match="private"):
        policy.resolve("mixed.example.com", 443)


def test_allowlist_from_env_admits_hosts_and_networks() -> None:
    env = {"JOBQ_OUTBOUND_ALLOWLIST": " intranet.corp , 127.0.0.0/30, *.lab.test,[fd00::/8]"}
    policy = OutboundPolicy.from_env(env, resolver=lambda host, port: ["10.9.9.9"])
    assert policy.resolve("intranet.corp", 80) == ["10.9.9.9"]
    assert policy.resolve("a.b.lab.test", 80) == ["10.9.9.9"]
    assert policy.check_url("http://127.0.0.2:8080/") == ["127.0.0.2"]
    assert policy.check_url("http://0x7f.0.0.3/") == ["127.0.0.3"]
    assert policy.resolve("fd00::1", 80) == ["fd00::1"]
    with pytest.raises(DestinationNotAllowed):
        policy.check_url("http://127.0.0.4/")
    with pytest.raises(DestinationNotAllowed):
        policy.resolve("lab.test.evil.com", 80)
    with pytest.raises(DestinationNotAllowed):
        policy.resolve("other.corp", 80)


def test_metadata_needs_an_exact_allowlist_entry() -> None:
    resolver = lambda host, port: ["169.254.169.254"]  # noqa: E731
    env = {"JOBQ_OUTBOUND_ALLOWLIST": "169.254.0.0/16,meta.internal"}
    wide = OutboundPolicy.from_env(env, resolver=resolver)
    with pytest.raises(DestinationNotAllowed, match="metadata"):
        wide.resolve("meta.internal", 80)
    exact = OutboundPolicy.from_env({"JOBQ_OUTBOUND_ALLOWLIST": "169.254.169.254"}, resolver=resolver)
    assert exact.resolve("meta.internal", 80) == ["169.254.169.254"]


def test_bad_allowlist_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="JOBQ_OUTBOUND_ALLOWLIST"):
        OutboundPolicy.from_env({"JOBQ_OUTBOUND_ALLOWLIST": "http://x/"})


def test_unresolvable_host_is_a_retryable_error() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ResolutionFailed) as err:
        OutboundPolicy(resolver=resolver).resolve("nowhere.invalid", 80)
    assert err.value.retryable
    with http_client(OutboundPolicy(resolver=resolver)) as client, pytest.raises(httpx.ConnectError):
        client.get("http://nowhere.invalid/")


def test_allowlisted_loopback_host_works(pair: tuple[Server, Canary]) -> None:
    server, canary = pair
    policy = OutboundPolicy(allow_hosts={"hooks.test"}, resolver=lambda host, port: [ALLOWED_IP])
    with http_client(policy) as client:
        r = client.get(f"http://hooks.test:{server.port}/hello")
    assert r.status_code == 200 and r.text == "ok"
    assert server.seen == [("/hello", f"hooks.test:{server.port}")]
    assert canary.accepted == 0


def test_redirect_to_a_refused_host_is_blocked(pair: tuple[Server, Canary]) -> None:
    server, canary = pair
    server.redirect_to = f"http://127.0.0.1:{canary.port}/stolen"
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")])
    with http_client(policy) as client:
        first = client.get(f"http://{ALLOWED_IP}:{server.port}/redirect")
        assert first.status_code == 302  # redirects are off by default
    with http_client(policy, follow_redirects=True) as client, pytest.raises(DestinationNotAllowed):
        client.get(f"http://{ALLOWED_IP}:{server.port}/redirect")
    server.redirect_to = f"http://2130706433:{canary.port}/stolen"
    with http_client(policy, follow_redirects=True) as client, pytest.raises(DestinationNotAllowed):
        client.get(f"http://{ALLOWED_IP}:{server.port}/redirect")
    assert [p for p, _ in server.seen] == ["/redirect"] * 3
    assert canary.accepted == 0


def test_redirect_between_allowed_hosts_is_followed(pair: tuple[Server, Canary]) -> None:
    server, _ = pair
    server.redirect_to = f"http://{ALLOWED_IP}:{server.port}/landed"
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")])
    with http_client(policy, follow_redirects=True) as client:
        r = client.get(f"http://{ALLOWED_IP}:{server.port}/redirect")
    assert r.status_code == 200 and [p for p, _ in server.seen] == ["/redirect", "/landed"]


def _rebinding_resolver() -> tuple[list[str], object]:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return [ALLOWED_IP] if len(calls) == 1 else ["127.0.0.1"]

    return calls, resolver


def test_rebinding_connects_only_to_the_pinned_address(pair: tuple[Server, Canary]) -> None:
    server, canary = pair
    calls, resolver = _rebinding_resolver()
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")], resolver=resolver)
    with http_client(policy) as client:
        for _ in range(3):  # the server closes each connection: every request opens a new one
            assert client.get(f"http://rebind.test:{server.port}/again").status_code == 200
    assert calls == ["rebind.test"]
    assert len(server.seen) == 3 and canary.accepted == 0
    # Without the pin the second answer is checked again, and refused.
    with pytest.raises(DestinationNotAllowed):
        policy.resolve("rebind.test", server.port)


def test_async_client_pins_and_refuses(pair: tuple[Server, Canary]) -> None:
    server, canary = pair
    calls, resolver = _rebinding_resolver()
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")], resolver=resolver)

    async def main() -> None:
        async with async_http_client(policy) as client:
            for _ in range(2):
                r = await client.get(f"http://rebind.test:{server.port}/a")
                assert r.status_code == 200
            with pytest.raises(DestinationNotAllowed):
                await client.get(f"http://0x7f.1:{canary.port}/")
        server.redirect_to = f"http://[::ffff:127.0.0.1]:{canary.port}/"
        async with async_http_client(policy, follow_redirects=True) as client:
            with pytest.raises(DestinationNotAllowed):
                await client.get(f"http://{ALLOWED_IP}:{server.port}/redirect")

    anyio.run(main)
    assert calls == ["rebind.test"] and canary.accepted == 0
    assert [p for p, _ in server.seen] == ["/a", "/a", "/redirect"]


def _tls_pair(hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:
        f.write(cert_pem + key_pem)
        f.flush()
        server_ctx.load_cert_chain(f.name)
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    return server_ctx, client_ctx


def test_tls_keeps_the_hostname_for_sni_and_host_header() -> None:
    server_ctx, client_ctx = _tls_pair("secure.test")
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)
    server = Server(ALLOWED_IP, tls=server_ctx)
    try:
        policy = OutboundPolicy(allow_hosts={"secure.test"}, resolver=lambda host, port: [ALLOWED_IP])
        with http_client(policy, verify=client_ctx) as client:
            r = client.get(f"https://secure.test:{server.port}/tls")
        assert r.status_code == 200
        assert server.seen == [("/tls", f"secure.test:{server.port}")] and sni == ["secure.test"]
    finally:
        server.close()


def test_client_refuses_bypass_arguments() -> None:
    for kw in ({"proxy": "http://proxy:3128"}, {"transport": httpx.HTTPTransport()}, {"trust_env": True}):
        with pytest.raises(TypeError, match="bypass"):
            http_client(OutboundPolicy(), **kw)


def test_describe_url_withholds_tokens() -> None:
    assert describe_url("https://hooks.slack.com/services/T0/B0/XXXXsecret") == "https://hooks.slack.com/…"
    assert describe_url("http://user:pw@[::1]:8080/?token=s") == "http://[::1]:8080/…"
    assert describe_url("https://example.com") == "https://example.com/"
    assert describe_url("not a url") == "<invalid url>"


def test_public_hosts_only_get_web_ports(pair: tuple[Server, Canary]) -> None:
    public = OutboundPolicy(resolver=lambda host, port: ["93.184.216.34"])
    assert public.check_url("https://hook.example.com:8443/x") == ["93.184.216.34"]
    with pytest.raises(DestinationNotAllowed, match="port 6379"):
        public.check_url("http://hook.example.com:6379/")
    with http_client(public) as client, pytest.raises(DestinationNotAllowed, match="port 6379"):
        client.get("http://hook.example.com:6379/")
    anyport = OutboundPolicy.from_env({"JOBQ_OUTBOUND_PORTS": "*"}, resolver=public.resolver)
    assert anyport.check_url("http://hook.example.com:6379/") == ["93.184.216.34"]
    with pytest.raises(ConfigError):
        OutboundPolicy.from_env({"JOBQ_OUTBOUND_PORTS": "80,http"})
    server, _ = pair  # an allow-listed destination may use any port
    allowed = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")])
    assert allowed.check_url(f"http://{ALLOWED_IP}:{server.port}/") == [ALLOWED_IP]


def test_is_listed_names_the_operators_own_hosts() -> None:
    policy = OutboundPolicy.from_env({"JOBQ_OUTBOUND_ALLOWLIST": "relay.corp,127.0.0.2/32"})
    assert policy.is_listed("relay.corp") and policy.is_listed("RELAY.corp.")
    assert policy.is_listed("127.0.0.2") and policy.is_listed("0x7f.0.0.2")
    assert not policy.is_listed("127.0.0.1") and not policy.is_listed("hooks.slack.com")


def test_request_log_lines_hide_url_paths(pair: tuple[Server, Canary], caplog: pytest.LogCaptureFixture) -> None:
    server, _ = pair
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network(f"{ALLOWED_IP}/32")])
    with caplog.at_level("DEBUG"), http_client(policy) as client:
        client.get(f"http://{ALLOWED_IP}:{server.port}/services/T0/B0/token-in-path?key=token-in-query")
    assert "HTTP Request: GET" in caplog.text
    assert "token-in" not in caplog.text and f"http://{ALLOWED_IP}:{server.port}/…" in caplog.text
