from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobq import ConfigError
from jobq_bugreports.projects import ApiKeys, load_projects, parse_projects


def test_api_keys_map_to_projects_with_rotation() -> None:
    keys = ApiKeys.parse(" proj-1:aaaaaaaaaaaaaaaa1 , proj-2:bbbbbbbbbbbbbbbb2,proj-1:cccccccccccccccc3,")
    assert len(keys) == 3
    assert keys.project_for("aaaaaaaaaaaaaaaa1") == "proj-1"
    assert keys.project_for("cccccccccccccccc3") == "proj-1"
    assert keys.project_for("bbbbbbbbbbbbbbbb2") == "proj-2"
    assert keys.project_for("aaaaaaaaaaaaaaaa") is None
    assert keys.project_for("") is None and keys.project_for(None) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [("proj-1", "must be projectId:key"), ("a/b:xxxxxxxxxxxxxxxxxx", "invalid project id"),
     ("proj-1:short", "shorter than 16")],
)
def test_api_keys_malformed(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ApiKeys.parse(text)
    assert needle in str(exc.value)
    assert "short" not in str(exc.value).replace("shorter", "")


def test_projects_from_json_and_toml(tmp_path: Path) -> None:
    raw = {"proj-1": {"integrations": [{"platform": "jira", "credentials": {"token": "t0k"},
                                        "config": {"project": "BUG"}}],
                      "notifications": [{"type": "slack", "name": "ops", "recipients": ["https://hooks/x"]}]}}
    (tmp_path / "p.json").write_text(json.dumps(raw))
    (tmp_path / "p.toml").write_text(
        '[[proj-1.integrations]]\nplatform = "jira"\ncredentials = { token = "t0k" }\n'
        'config = { project = "BUG" }\n'
        '[[proj-1.notifications]]\ntype = "slack"\nname = "ops"\nrecipients = ["https://hooks/x"]\n'
    )
    for name in ("p.json", "p.toml"):
        p = load_projects(tmp_path / name)["proj-1"]
        assert p.integrations[0].name == "jira" and p.integrations[0].credentials == {"token": "t0k"}
        assert p.integrations[0].config == {"project": "BUG"}
        assert p.notifications[0].name == "ops" and p.notifications[0].type == "slack"
        assert "t0k" not in repr(p)
    assert load_projects(None) == {}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ([], "must be an object"),
        ({"p": {"integrations": [{"platform": "git hub"}]}}, "integrations[0].platform"),
        ({"p": {"integrations": [{"platform": "github", "token": "SECRET"}]}}, "unknown key(s) token"),
        ({"p": {"integrations": [{"platform": "github"}, {"platform": "github"}]}}, "github used twice"),
        ({"p": {"notifications": [{"type": "email", "recipients": []}]}}, "recipients must be a non-empty"),
        ({"p": {"webhooks": []}}, "unknown key(s) webhooks"),
        ({"p/q": {}}, "invalid project id"),
    ],
)
def test_projects_errors_name_the_entry(raw: object, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_projects(raw, "projects.json")
    assert needle in str(exc.value)
    assert "SECRET" not in str(exc.value)


def test_projects_file_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[p]\ncredentials = "SECRET\n')
    with pytest.raises(ConfigError) as exc:
        load_projects(bad)
    assert "not valid TOML" in str(exc.value) and "SECRET" not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_projects(tmp_path / "missing.json")
    assert "cannot read" in str(exc.value)


def test_webhook_recipients_with_secrets_as_notification_md_describes(tmp_path: Path) -> None:
    """The projects file takes ``{url, secret}`` recipients, and the notification plugin's payload accepts them."""
    from jobq_bugreports.intake import check_project_payloads
    from jobq_plugin_notification import jobq_queues

    path = tmp_path / "projects.toml"
    path.write_text(
        '[[p1.notifications]]\ntype = "webhook"\nrecipients = ["https://hooks.example.com/in", '
        '{ url = "https://ci.example.com/hook", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ1m5ZlLc3Ek=" }]\n')
    projects = load_projects(path)
    assert projects["p1"].notifications[0].recipients[1] == {
        "url": "https://ci.example.com/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ1m5ZlLc3Ek="}
    check_project_payloads(projects, jobq_queues())  # raises ConfigError naming the entry if refused
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"p1": {"notifications": [{"type": "webhook", "recipients": [{"uri": "x"}]}]}}))
    with pytest.raises(ConfigError, match=r"recipients must be a non-empty list of strings or \{url, secret\}"):
        load_projects(bad)


def test_replay_privacy_from_the_projects_file(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[proj-1.replay]\nallowInputTypes = ["range", "checkbox"]\nmaskTextClasses = ["private"]\n'
        'maskTextAttributes = ["data-private"]\n[proj-2]\n')
    projects = load_projects(tmp_path / "p.toml")
    assert projects["proj-1"].replay_privacy == {"allowInputTypes": ["range", "checkbox"],
                                                 "maskTextAttributes": ["data-private"],
                                                 "maskTextClasses": ["private"]}
    assert projects["proj-2"].replay_privacy is None  # every input masked


@pytest.mark.parametrize(
    ("replay", "needle"),
    [({"allowInputTypes": ["password"]}, "replay.allowInputTypes: password inputs are always masked"),
     ({"allowInputTypes": ["range", "ssn"]}, "replay.allowInputTypes: 'ssn' is not an input type"),
     ({"allowInputTypes": "range"}, "replay.allowInputTypes must be a list of names"),
     ({"maskTextAttributes": ["aria-label"]}, "replay.maskTextAttributes: 'aria-label' is not a data-* attribute"),
     ({"maskInputs": False}, "replay: unknown key(s) maskInputs"),
     ([], "replay must be an object")],
)
def test_replay_privacy_errors_name_the_field(replay: object, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_projects({"proj-1": {"replay": replay}})
    assert needle in str(exc.value) and "proj-1" in str(exc.value)
