"""A local webhook endpoint for the demo: records each delivery and checks its Standard Webhooks
signature (``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

PATH = "/hooks/bug-reports"


def new_secret() -> str:
    """A ``whsec_<base64>`` signing secret, the form ``WEBHOOK_SECRET`` takes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signature_ok(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
                                .digest()).decode()
    presented = [part.partition(",")[2] for part in header.split() if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, p) for p in presented)


@attrs.frozen
class Delivery:
    webhook_id: str
    verified: bool
    event: dict[str, Any]


class WebhookReceiver:
    """``with WebhookReceiver(secret) as hook:`` then ``hook.url``; deliveries land in ``hook.deliveries``."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != PATH:
                    self.send_response(404)
                    self.end_headers()
                    return
                h = self.headers
                ok = signature_ok(receiver.secret, h.get("webhook-id", ""), h.get("webhook-timestamp", ""), body,
                                  h.get("webhook-signature", ""))
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                with receiver._lock:
                    receiver.deliveries.append(Delivery(h.get("webhook-id", ""), ok, event))
                self.send_response(200 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
