"""Slack's Web API, the methods jobq uses: ``chat.postMessage``, ``chat.update``,
``chat.getPermalink``, ``conversations.history``.

Like Slack: HTTP 200 with ``{"ok": false, "error": "…"}`` for failures (``invalid_auth``,
``channel_not_found``, ``not_in_channel``, ``missing_scope``…), 429 with ``Retry-After`` and
``{"ok": false, "error": "ratelimited"}`` when rate limited, a ``missing_charset`` warning for a
JSON body sent without ``charset``. Channels may be named (``#bugs``) in ``chat.postMessage``
only; the answer gives the channel id, which the other methods require.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from .server import FakeVendorServer, Request, Response


def slack_error(error: str, **extra: Any) -> Response:
    return Response(200, json={"ok": False, "error": error, **extra})


class FakeSlack(FakeVendorServer):
    """:param channels: channel id → name; :param member_of: ids the bot was invited to (all by
    default); :param history_scope: whether the token may read ``conversations.history``."""

    def __init__(self, *, bot_token: str = "xoxb-test-token", channels: dict[str, str] | None = None,
                 member_of: set[str] | None = None, history_scope: bool = True,
                 echo_credentials: bool = False) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.channels = channels if channels is not None else {"C0123456789": "bugs"}
        self.member_of = set(self.channels) if member_of is None else member_of
        self.history_scope = history_scope
        self.echo_credentials = echo_credentials
        self.messages: dict[str, list[dict[str, Any]]] = {c: [] for c in self.channels}
        self._seq = 0
        self.route("POST", "/api/chat.postMessage", "chat.postMessage", self._post)
        self.route("POST", "/api/chat.update", "chat.update", self._update)
        self.route("GET", "/api/chat.getPermalink", "chat.getPermalink", self._permalink)
        self.route("GET", "/api/conversations.history", "conversations.history", self._history)

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def _args(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return {k: v[0] for k, v in request.query.items()}
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            return request.json if isinstance(request.json, dict) else {}
        return {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}

    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        if token is None and "json" not in request.headers.get("content-type", ""):
            token = self._args(request).get("token")  # form bodies and query strings may carry it
        if not token:
            return slack_error("not_authed")
        if token != self.bot_token:
            extra = {"detail": f"token {token} is not valid"} if self.echo_credentials else {}
            return slack_error("invalid_auth", **extra)
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, text="<html><body>Not Found</body></html>")

    def rate_limit_next(self, *, retry_after: int = 1, operation: str | None = None, times: int = 1) -> None:
        self.fail_next(429, json={"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)},
                       operation=operation, times=times)

    def _channel(self, given: Any) -> str | None:
        if not isinstance(given, str):
            return None
        if given in self.channels:
            return given
        name = given.lstrip("#")
        return next((cid for cid, n in self.channels.items() if n == name), None)

    def _warnings(self, request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if "json" in ctype and "charset" not in ctype:
            return {"warning": "missing_charset", "response_metadata": {"warnings": ["missing_charset"]}}
        return {}

    def _check_message(self, args: dict[str, Any]) -> Response | None:
        text, blocks = args.get("text"), args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return slack_error("invalid_blocks_format")
        if not text and not blocks:
            return slack_error("no_text")
        if blocks is not None:
            if not isinstance(blocks, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str)
                                                       for b in blocks):
                return slack_error("invalid_blocks", errors=["must be an array of objects with a type"])
            ids = [b.get("block_id") for b in blocks if b.get("block_id")]
            if len(ids) != len(set(ids)) or any(len(str(i)) > 255 for i in ids):
                return slack_error("invalid_blocks", errors=["block_id must be unique and at most 255 chars"])
            for b in blocks:
                if b["type"] == "header" and len((b.get("text") or {}).get("text", "")) > 150:
                    return slack_error("invalid_blocks", errors=["header text must be at most 150 characters"])
        if text and len(text) > 40000:
            return slack_error("msg_too_long")
        return None

    def _post(self, request: Request, _m: re.Match[str]) -> Response:
        args = self._args(request)
        cid = self._channel(args.get("channel"))
        if cid is None:
            return slack_error("channel_not_found")
        if cid not in self.member_of:
            return slack_error("not_in_channel")
        refused = self._check_message(args)
        if refused:
            return refused
        with self._lock:
            self._seq += 1
            ts = f"{int(time.time()):010d}.{self._seq:06d}"
            blocks = args.get("blocks")
            message = {"type": "message", "subtype": "bot_message", "text": args.get("text") or "",
                       "ts": ts, "bot_id": "B0123456789", "blocks": json.loads(blocks) if isinstance(blocks, str)
                       else blocks or []}
            self.messages[cid].append(message)
        return Response(200, json={"ok": True, "channel": cid, "ts": ts, "message": {
            k: v for k, v in message.items() if k in ("type", "subtype", "text", "ts", "bot_id", "blocks")},
            **self._warnings(request)})

    def _find(self, cid: str | None, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(cid or "", []) if m["ts"] == ts), None)

    def _update(self, request: Request, _m: re.Match[str]) -> Response:
        args = self._args(request)
        cid = args.get("channel")
        if cid not in self.channels:
            return slack_error("channel_not_found")
        message = self._find(cid, args.get("ts"))
        if message is None:
            return slack_error("message_not_found")
        refused = self._check_message(args)
        if refused:
            return refused
        with self._lock:
            if "text" in args:
                message["text"] = args["text"]
            if "blocks" in args:
                message["blocks"] = args["blocks"]
        return Response(200, json={"ok": True, "channel": cid, "ts": message["ts"], "text": message["text"],
                                   "message": {"text": message["text"]}, **self._warnings(request)})

    def _permalink(self, request: Request, _m: re.Match[str]) -> Response:
        args = self._args(request)
        cid = args.get("channel")
        if cid not in self.channels:
            return slack_error("channel_not_found")
        if self._find(cid, args.get("message_ts")) is None:
            return slack_error("message_not_found")
        ts = str(args["message_ts"]).replace(".", "")
        return Response(200, json={"ok": True, "channel": cid,
                                   "permalink": f"https://jobq-test.slack.example/archives/{cid}/p{ts}"})

    def _history(self, request: Request, _m: re.Match[str]) -> Response:
        if not self.history_scope:
            return slack_error("missing_scope", needed="channels:history", provided="chat:write")
        args = self._args(request)
        cid = args.get("channel")
        if cid not in self.channels:
            return slack_error("channel_not_found")
        if cid not in self.member_of:
            return slack_error("not_in_channel")
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        with self._lock:
            found = [m for m in reversed(self.messages[cid]) if float(m["ts"]) >= oldest][:limit]
        return Response(200, json={"ok": True, "messages": found, "has_more": False,
                                   "pin_count": 0, "response_metadata": {"next_cursor": ""}})
