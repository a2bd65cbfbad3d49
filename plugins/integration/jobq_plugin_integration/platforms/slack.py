"""Slack Web API: ``chat.postMessage``, then ``chat.update`` of the same message on a later sync.

Bot token (``xoxb-…``) in ``Authorization: Bearer``, JSON bodies. Slack answers HTTP 200 with
``{"ok": false, "error": "…"}`` for most failures and 429 + ``Retry-After`` when rate limited.
The message's header block carries the report's marker as its ``block_id``; when the channel is
given by id and the bot may read its history, a retry finds a message whose response was lost.
Slack has no idempotency key, so without that scope a lost response can mean a second message.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from jobq import JobFailed, Retry

from ..errors import AuthFailed, PlatformRejected, PlatformUnavailable, ProtocolError, TargetNotFound
from ..fields import api_url, in_range, pattern, secret
from ..platform import ExternalIssue, Platform, Sync
from ..render import slack_blocks

AUTH_ERRORS = {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
               "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied",
               "access_denied", "team_access_not_granted"}
TARGET_ERRORS = {"channel_not_found", "not_in_channel", "is_archived", "message_not_found"}
RETRYABLE_ERRORS = {"internal_error", "fatal_error", "request_timeout", "service_unavailable",
                    "ratelimited", "rate_limited"}
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")
LOOKBACK_SLACK = 600.0


@attrs.frozen(kw_only=True)
class SlackCredentials:
    bot_token: str = secret(validator=pattern(r"xox[a-z]-\S+", "a Slack token (xoxb-…)"))


@attrs.frozen(kw_only=True)
class SlackConfig:
    """:param channel: a channel id (``C0123ABCD``, needed for duplicate detection) or ``#name``.
    :param messages_per_second: posts to this channel, across all workers (Slack allows about one).
    """

    channel: str = attrs.field(validator=pattern(r"#?[A-Za-z0-9][A-Za-z0-9._-]{0,79}", "a channel id or name"))
    api_url: str = attrs.field(default="https://slack.com/api", validator=api_url())
    messages_per_second: float = attrs.field(default=1.0, validator=in_range(0, 100))


class SlackPlatform(Platform):
    name = "slack"
    title = "Slack"
    credentials_type = SlackCredentials
    config_type = SlackConfig

    def _api(self, config: SlackConfig, method: str) -> str:
        return f"{config.api_url.rstrip('/')}/{method}"

    def target(self, config: SlackConfig) -> str:
        return f"{config.api_url.rstrip('/')}#{config.channel.lstrip('#')}"

    def api_urls(self, config: SlackConfig) -> list[str]:
        return [config.api_url]

    def _headers(self, credentials: SlackCredentials, body: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {credentials.bot_token}"}
        if body:  # without the charset Slack answers with a "missing_charset" warning
            headers["Content-Type"] = "application/json; charset=utf-8"
        return headers

    async def _call(self, sync: Sync, http_method: str, method: str, action: str, **kw: Any) -> dict[str, Any]:
        """One Web API call; ``ok: false`` becomes the matching reason code."""
        config: SlackConfig = sync.config
        response = await sync.http.request(
            http_method, self._api(config, method), action=action,
            not_found=f"no Slack Web API at {config.api_url} (check config.apiUrl)", ok=(200,),
            headers=self._headers(sync.credentials, "json" in kw), **kw)
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError(f"slack: {method} answered without JSON (is config.apiUrl right?)") from None
        if not isinstance(body, dict):
            raise ProtocolError(f"slack: {method} answered with {type(body).__name__}")
        if body.get("ok") is not True:
            raise SlackError(str(body.get("error") or "unknown_error"), body)
        return body

    def _raise(self, err: SlackError, config: SlackConfig, action: str) -> None:
        code = err.error
        if code in AUTH_ERRORS:
            needed = err.body.get("needed")
            extra = f", needs scope {needed}" if isinstance(needed, str) and needed else ""
            raise AuthFailed(f"slack: {code} while trying to {action}{extra}")
        if code in TARGET_ERRORS:
            hint = {"not_in_channel": "invite the bot to the channel",
                    "is_archived": "the channel is archived",
                    "message_not_found": "the message recorded for this report was deleted (remove metadata "
                                         "integrations.slack to post a new one)"}.get(code, "check config.channel")
            raise TargetNotFound(f"slack: {code} for channel {config.channel!r} ({hint})")
        if code in RETRYABLE_ERRORS:
            raise PlatformUnavailable(f"slack: {code} while trying to {action}")
        raise PlatformRejected(f"slack: {code} while trying to {action}")

    async def _permalink(self, sync: Sync, channel: str, ts: str) -> str:
        """The message's permalink; a plain archive link if Slack will not say (it is cosmetic)."""
        try:
            body = await self._call(sync, "GET", "chat.getPermalink", "get the message link",
                                    params={"channel": channel, "message_ts": ts})
            link = body.get("permalink")
            if isinstance(link, str) and link.startswith("https://"):
                return link
        except (SlackError, JobFailed, Retry):
            pass  # the message is posted: a missing link must not fail (and re-post) it
        return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"

    def _message(self, sync: Sync) -> dict[str, Any]:
        text, blocks = slack_blocks(sync.report, marker=sync.marker)
        return {"text": text, "blocks": blocks}

    async def create(self, sync: Sync) -> ExternalIssue:
        config: SlackConfig = sync.config
        await sync.pace(self.target(config), 1 / config.messages_per_second)  # Slack: ~1 message/s per channel
        try:
            body = await self._call(sync, "POST", "chat.postMessage", "post the Slack message",
                                    json={"channel": config.channel, **self._message(sync),
                                          "unfurl_links": False, "unfurl_media": False})
        except SlackError as err:
            self._raise(err, config, "post the Slack message")
            raise
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            raise ProtocolError("slack: chat.postMessage answered without channel and ts")
        return ExternalIssue(external_id=ts, external_url=await self._permalink(sync, channel, ts),
                             ref={"channel": channel, "ts": ts})

    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        config: SlackConfig = sync.config
        channel = str(existing.ref.get("channel") or config.channel)
        ts = str(existing.ref.get("ts") or existing.external_id)
        await sync.pace(self.target(config), 1 / config.messages_per_second)
        try:
            await self._call(sync, "POST", "chat.update", "update the Slack message",
                             json={"channel": channel, "ts": ts, **self._message(sync)})
        except SlackError as err:
            self._raise(err, config, "update the Slack message")
            raise
        return existing

    async def find_existing(self, sync: Sync) -> ExternalIssue | None:
        config: SlackConfig = sync.config
        if not CHANNEL_ID.fullmatch(config.channel):
            return None  # conversations.history takes ids only
        try:
            body = await self._call(sync, "GET", "conversations.history", "look for an earlier Slack message",
                                    params={"channel": config.channel, "limit": "100",
                                            "oldest": f"{max(0.0, sync.since - LOOKBACK_SLACK):.6f}"})
        except SlackError as err:
            if err.error in ("missing_scope", "not_in_channel", "channel_not_found"):
                return None  # cannot tell; the post that follows reports a real problem
            self._raise(err, config, "look for an earlier Slack message")
            raise
        for message in body.get("messages") or []:
            blocks = message.get("blocks") if isinstance(message, dict) else None
            if any(isinstance(b, dict) and b.get("block_id") == sync.marker for b in blocks or []):
                ts = str(message.get("ts"))
                return ExternalIssue(external_id=ts, external_url=await self._permalink(sync, config.channel, ts),
                                     ref={"channel": config.channel, "ts": ts})
        return None


class SlackError(Exception):
    """An ``ok: false`` answer; ``error`` is Slack's code (``channel_not_found``…)."""

    def __init__(self, error: str, body: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error
        self.body = body
