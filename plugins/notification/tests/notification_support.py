"""Real servers on loopback for the notification tests: an HTTP receiver, a canary, SMTP with TLS and AUTH."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jobq import JobContext
from jobq.serialization import structure_payload
from jobq_plugin_notification import handler
from jobq_plugin_notification.payload import NotificationJob

SPECS = Path("/work/shared/specs")
RECEIVER_HOST = "127.0.0.2"
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-canary-Pa55-7f3e1b"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ1m5ZlLc3Ek="
CREATED = 1_760_000_000.0
NOTIFY_ENV = (
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
    "SMTP_SECURITY",
    "SMTP_CA_FILE",
    "SENDGRID_API_KEY",
    "SENDGRID_API_URL",
    "WEBHOOK_SECRET",
    "NOTIFICATION_TIMEOUT",
    "NOTIFICATION_MAX_PARALLEL",
    "NOTIFICATION_TEMPLATE_DIR",
    "JOBQ_OUTBOUND_ALLOWLIST",
    "JOBQ_OUTBOUND_PORTS",
    "DATABASE_URL",
    "JOBQ_REPORTS_TABLE",
)


# -- HTTP receiver ------------------------------------------------------------------------------------


@attrs.frozen
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver(http.server.ThreadingHTTPServer):
    """Records every request; answers each path from a script of responses, then 200 ``ok``."""

    daemon_threads = True

    def __init__(self, host: str = RECEIVER_HOST) -> None:
        super().__init__((host, 0), _ReceiverHandler)
        self.host = host
        self.port = self.server_address[1]
        self.requests: list[Received] = []
        self.script: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.default: tuple[int, dict[str, str], bytes] = (200, {}, b"ok")
        self.lock = threading.Lock()
        self.delay = 0.0
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def respond(self, path: str, *responses: tuple[int, dict[str, str], bytes]) -> None:
        """Queue responses for ``path`` (each used once, in order)."""
        with self.lock:
            self.script.setdefault(path, []).extend(responses)

    def hits(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def next_response(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append(received)
            queue = self.script.get(received.path)
            return queue.pop(0) if queue else self.default

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Receiver = self.server  # type: ignore[assignment]
        received = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        status, headers, out = server.next_response(received)
        if server.delay:
            time.sleep(server.delay)  # a slow receiver, for the benchmark and timeouts
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


# -- environment and direct runs ---------------------------------------------------------------------


def payload(type_: str, recipients: list[Any], **extra: Any) -> dict[str, Any]:
    report = {
        "title": 'Checkout button <b>broken</b> & "crashes"',
        "description": "Steps:\n1. <script>x</script>",
        "severity": "high",
        "url": "https://app.example.com/reports/b1",
    }
    return {
        "bugReportId": "b1",
        "projectId": "p1",
        "type": type_,
        "recipients": recipients,
        "event": "created",
        "report": report,
        **extra,
    }


def run_job(data: dict[str, Any], *, job_id: str = "job-1", attempt: int = 1) -> dict[str, Any]:
    """Run the handler once, as a worker would for that attempt (raises what the handler raises)."""
    progress: list[Any] = []
    ctx = JobContext(
        id=job_id,
        queue="notifications",
        name="",
        attempt=attempt,
        created_at=CREATED,
        token="t",
        data=structure_payload(data, NotificationJob),
        progress=progress.append,
    )
    return asyncio.run(handler.send_notification(ctx))


# -- TLS material -------------------------------------------------------------------------------------


@attrs.frozen
class Certs:
    ca_file: Path
    server: ssl.SSLContext


def make_certs(folder: Path) -> Certs:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, and the server context using it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca_file = folder / "cert.pem"
    key_file = folder / "key.pem"
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(ca_file, key_file)
    return Certs(ca_file, server)


# -- SMTP ---------------------------------------------------------------------------------------------


@attrs.define
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None
    tls: bool


class Inbox:
    """aiosmtpd handler: keeps each accepted message; replies per recipient from ``rcpt_replies``."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.rcpt_replies: dict[str, list[str]] = {}
        self.sessions = 0

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        replies = self.rcpt_replies.get(address)
        reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.mails.append(
            Mail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                login,
                session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 Message accepted"


def authenticator(server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class SmtpServer(Controller):
    """aiosmtpd on a socket bound to port 0 of 127.0.0.1 (no port race)."""

    def __init__(self, inbox: Inbox, **kw: Any) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        super().__init__(inbox, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kw)
        self.inbox = inbox

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def _trigger_server(self) -> None:
        # The base class opens a probe connection; with AUTH required and TLS it only logs noise.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            conn = ctx.wrap_socket(raw) if self.ssl_context else raw
            conn.recv(1024)
            conn.sendall(b"QUIT\r\n")
