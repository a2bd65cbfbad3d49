"""The ``integrations`` job payload (camelCase on the wire, structured by the core converter).

``credentials`` and ``config`` stay dicts here: their shape belongs to the platform, which
structures them into its own attrs classes. When the platform is installed where the job is
enqueued, that happens at enqueue too, so a bad ``config.siteUrl`` is refused before anything
is written; an unknown platform is left for the worker to refuse (it may have more installed).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .errors import InvalidField, PlatformBroken, UnknownPlatform
from .fields import link_url, non_empty

SEVERITIES = ("low", "medium", "high", "critical")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _id(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"'{attribute.name}' must be 1-128 characters of A-Z a-z 0-9 _ -, "
                         "starting with a letter or digit")


def _platform(_inst: Any, _attribute: attrs.Attribute, value: str) -> None:
    if not PLATFORM_NAME.fullmatch(value):
        raise ValueError("'platform' must be a lowercase name such as 'jira' ([a-z][a-z0-9_-]{0,63})")


def _severity(_inst: Any, _attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in SEVERITIES:
        raise ValueError(f"'severity' must be one of {', '.join(SEVERITIES)}")


def _report_field(check: Any, wire: str) -> Any:
    """Run a :mod:`fields` validator and word its error the way the core converter expects."""

    def run(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        try:
            check(inst, attribute, value)
        except ValueError as exc:
            raise ValueError(f"'report.{wire}' {exc}") from None

    return run


@attrs.frozen(kw_only=True)
class ReportContent:
    """What the issue shows; any field left out is read from the bug-report store."""

    title: str | None = attrs.field(default=None, validator=_report_field(non_empty(500), "title"))
    description: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.max_len(64 * 1024)))
    severity: str | None = attrs.field(default=None, validator=_severity)
    url: str | None = attrs.field(default=None, validator=_report_field(link_url(), "url"))
    screenshot_url: str | None = attrs.field(default=None,
                                             validator=_report_field(link_url(), "screenshotUrl"))
    replay_url: str | None = attrs.field(default=None, validator=_report_field(link_url(), "replayUrl"))


def _credentials_repr(_value: Any) -> str:
    return "'[redacted]'"


@attrs.frozen(kw_only=True)
class IntegrationJob:
    """Payload of the ``integrations`` queue.

    :param bug_report_id: the report to sync (``bugReportId`` on the wire).
    :param project_id: its project; must match the store's row when the report exists.
    :param platform: an installed platform's name (``jira``, ``github``, ``linear``, ``slack``...).
    :param credentials: the platform's secrets; a secret field of the queue (never logged, dropped
        from Redis when the job ends).
    :param config: where to create the issue (site, repository, team, channel...).
    :param report: the content; fields left out come from the bug-report store.
    """

    bug_report_id: str = attrs.field(validator=_id)
    project_id: str = attrs.field(validator=_id)
    platform: str = attrs.field(validator=_platform)
    credentials: dict[str, Any] = attrs.field(repr=_credentials_repr)
    config: dict[str, Any] = attrs.field(factory=dict)
    report: ReportContent | None = None

    def __attrs_post_init__(self) -> None:
        check_platform_fields(self.platform, self.credentials, self.config)


def check_platform_fields(platform: str, credentials: Any, config: Any) -> None:
    """Structure credentials and config with the platform's types when it is installed here."""
    from .registry import default_registry

    try:
        plat = default_registry().get(platform)
    except (UnknownPlatform, PlatformBroken):
        return
    from .fields import structure

    try:
        structure(plat.credentials_type, credentials, "credentials")
        structure(plat.config_type, config, "config")
    except InvalidField as exc:
        raise ValueError(str(exc)) from None
