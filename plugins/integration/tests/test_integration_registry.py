"""Platform discovery: broken or clashing entry points are reported, not fatal; the CLI shows them."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner
from jobq_plugin_integration.cli import integrations
from jobq_plugin_integration.errors import PlatformBroken, UnknownPlatform
from jobq_plugin_integration.platforms.github import GitHubPlatform
from jobq_plugin_integration.registry import GROUP, Entry, Registry, default_registry, load_entry


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_the_four_shipped_platforms_come_from_entry_points() -> None:
    reg = default_registry()
    assert reg.names() == ["github", "jira", "linear", "slack"]
    assert {e.distribution for e in reg.entries()} == {"jobq-plugin-integration"}
    assert isinstance(reg.get("github"), GitHubPlatform)


@pytest.mark.parametrize(("value", "reason"), [
    ("jobq_no_such_module:Platform", "failed to import jobq_no_such_module:Platform: ModuleNotFoundError"),
    ("json:loads", "is not a jobq_plugin_integration.Platform"),
    ("jobq_plugin_integration.platforms.github:GitHubPlatform", "declares name 'github' but is registered as"),
])
def test_broken_entry_points_are_kept_with_their_reason(value: str, reason: str) -> None:
    entry = load_entry(ep("bad", value))
    assert entry.platform is None and reason in (entry.error or "")
    reg = Registry([entry, load_entry(ep("github", "jobq_plugin_integration.platforms.github:GitHubPlatform"))])
    assert reg.names() == ["github"]
    with pytest.raises(PlatformBroken, match="installed but unusable") as info:
        reg.get("bad")
    assert info.value.code == "ERR_PLATFORM_BROKEN" and not info.value.retryable


def test_two_distributions_claiming_one_name_are_refused() -> None:
    ours = Entry(name="jira", value="a:B", distribution="jobq-plugin-integration", version="0.1",
                 platform=GitHubPlatform())
    theirs = Entry(name="jira", value="c:D", distribution="jobq-integration-jira-dc", version="1.0",
                   platform=GitHubPlatform())
    reg = Registry([ours, theirs])
    with pytest.raises(PlatformBroken, match="registered by both jobq-plugin-integration and "
                                             "jobq-integration-jira-dc"):
        reg.get("jira")
    with pytest.raises(UnknownPlatform, match="installed: none"):
        reg.get("gitlab")


def test_cli_lists_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_INTEGRATIONS_DISABLED", "slack")
    out = CliRunner().invoke(integrations, ["--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [p["name"] for p in data["platforms"]] == ["github", "jira", "linear"]
    assert data["disabled"] == ["slack"] and all(p["status"] == "ok" for p in data["platforms"])
    table = CliRunner().invoke(integrations, [])
    assert "jira         ok      jobq-plugin-integration" in table.output and "disabled by" in table.output
