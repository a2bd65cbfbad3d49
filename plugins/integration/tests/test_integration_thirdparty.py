"""A third-party platform installed for real: build a ``jobq-integration-gitlab`` wheel, pip-install it
into a fresh virtualenv that sees jobq and this plugin, and route a job to it through a real worker.
Nothing in this repository names GitLab.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest
from jobq_plugin_integration.registry import default_registry

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "jobq-integration-gitlab"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []  # jobq-plugin-integration in real life; left out so the test installs offline

[project.entry-points."jobq.integrations"]
gitlab = "jobq_integration_gitlab:GitLabPlatform"
"""

# The same platform as in docs/plugins/integration.md ("Writing a third-party platform").
PLATFORM = '''\
"""GitLab issues for jobq: POST/PUT /api/v4/projects/:id/issues, PRIVATE-TOKEN auth."""

from urllib.parse import quote

import attrs

from jobq_plugin_integration import ExternalIssue, Platform, Sync
from jobq_plugin_integration.fields import api_url, non_empty, secret
from jobq_plugin_integration.render import markdown, one_line


@attrs.frozen(kw_only=True)
class GitLabCredentials:
    token: str = secret()


@attrs.frozen(kw_only=True)
class GitLabConfig:
    project: str = attrs.field(validator=non_empty(255))  # numeric id or "group/project"
    api_url: str = attrs.field(default="https://gitlab.com/api/v4", validator=api_url())


class GitLabPlatform(Platform):
    name = "gitlab"
    title = "GitLab Issues"
    credentials_type = GitLabCredentials
    config_type = GitLabConfig

    def _issues(self, config):
        return f"{config.api_url.rstrip('/')}/projects/{quote(config.project, safe='')}/issues"

    def target(self, config):
        return f"{config.api_url}#{config.project}"

    def api_urls(self, config):
        return [config.api_url]

    def _issue(self, body):
        return ExternalIssue(external_id=str(body["iid"]), external_url=body["web_url"], ref={"iid": body["iid"]})

    def _content(self, sync):
        return {"title": one_line(sync.report.title, 255),
                "description": markdown(sync.report, marker=None, limit=1_000_000)}

    async def create(self, sync: Sync) -> ExternalIssue:
        response = await sync.http.request(
            "POST", self._issues(sync.config), action="create the GitLab issue",
            not_found=f"project {sync.config.project} not found", ok=(201,),
            json={**self._content(sync), "labels": sync.marker},
            headers={"PRIVATE-TOKEN": sync.credentials.token})
        return self._issue(response.json())

    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        response = await sync.http.request(
            "PUT", f"{self._issues(sync.config)}/{existing.ref['iid']}", action="update the GitLab issue",
            not_found=f"issue {existing.external_id} is gone", ok=(200,), json=self._content(sync),
            headers={"PRIVATE-TOKEN": sync.credentials.token})
        return self._issue(response.json())

    async def find_existing(self, sync: Sync):
        response = await sync.http.request(
            "GET", self._issues(sync.config), action="look for an earlier GitLab issue",
            not_found=f"project {sync.config.project} not found", ok=(200,),
            params={"labels": sync.marker}, headers={"PRIVATE-TOKEN": sync.credentials.token})
        found = response.json()
        return self._issue(found[0]) if found else None
'''

# Runs inside the fresh virtualenv: a fake GitLab, a real worker on real Redis, one job.
SCRIPT = '''\
import json
from jobq import InvalidPayload
from jobq.testing import Harness, delete_prefix, make_test_settings
from jobq_plugin_integration import jobq_queues
from jobq_plugin_integration.registry import default_registry
from jobq_plugin_integration.testing import FakeVendorServer, Response

gitlab = FakeVendorServer()
issues = []

def create(request, match):
    if request.headers.get("private-token") != "glpat-test":
        return Response(401, json={"message": "401 Unauthorized"})
    issues.append(request.json)
    iid = len(issues)
    return Response(201, json={"id": 100 + iid, "iid": iid, "web_url": f"{gitlab.url}/g/p/-/issues/{iid}"})

gitlab.route("POST", "/api/v4/projects/g%2Fp/issues", "create", create)
gitlab.route("GET", "/api/v4/projects/g%2Fp/issues", "list", lambda r, m: Response(200, json=[]))
out = {"platforms": default_registry().names()}
with gitlab:
    (spec,) = jobq_queues()
    settings = make_test_settings()
    h = Harness(settings)
    try:
        h.start(spec)
        job = h.run(spec, {"bugReportId": "b1", "projectId": "p1", "platform": "gitlab",
                           "credentials": {"token": "glpat-test"},
                           "config": {"project": "g/p", "apiUrl": gitlab.url + "/api/v4"},
                           "report": {"title": "From a third-party platform"}}, job_id="gl-1")
        try:  # the platform's own config type is enforced at enqueue, here as in a producer
            h.manager.add_job("integrations", "gl-2", {"bugReportId": "b2", "projectId": "p1",
                              "platform": "gitlab", "credentials": {"token": "x"}, "report": {"title": "t"}})
            bad = None
        except InvalidPayload as exc:
            bad = str(exc)
        out.update(state=job.state, result=job.result, failure=job.failure and job.failure.code,
                   bad=bad, issues=issues,
                   operations=[e.operation for e in gitlab.exchanges])
    finally:
        h.close()
        delete_prefix(h.manager.redis, settings.prefix)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_pip_installed_platform_is_routed_to(tmp_path: Path) -> None:
    src = tmp_path / "jobq-integration-gitlab"
    (src / "jobq_integration_gitlab").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "jobq_integration_gitlab" / "__init__.py").write_text(PLATFORM)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(dist), str(src)], check=True, timeout=60)
    (wheel,) = dist.glob("jobq_integration_gitlab-0.1.0-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    # The fresh environment sees the shared one (jobq, this plugin, pip) the way --system-site-packages would.
    shared = sysconfig.get_path("purelib")
    (site_dir / "zz_shared_env.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, timeout=60)
    assert (site_dir / "jobq_integration_gitlab" / "__init__.py").exists(), "installed into the fresh venv"

    run = subprocess.run([str(python), "-c", textwrap.dedent(SCRIPT)], capture_output=True, text=True,
                         timeout=90, env={"PATH": "/usr/bin:/bin", "JOBQ_OUTBOUND_ALLOWLIST": "127.0.0.1",
                                          "JOBQ_INTEGRATION_ALLOW_HTTP": "1",
                                          "DATABASE_URL": f"sqlite:///{tmp_path / 'reports.db'}"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["platforms"] == ["github", "gitlab", "jira", "linear", "slack"]
    assert out["state"] == "completed", out["failure"]
    assert out["result"]["platform"] == "gitlab" and out["result"]["externalId"] == "1"
    assert out["result"]["status"] == "created" and out["operations"] == ["list", "create"]
    assert out["issues"][0]["title"] == "From a third-party platform"
    assert out["issues"][0]["labels"].startswith("jobq-")
    assert "config.project: required" in (out["bad"] or "")
    assert "gitlab" not in default_registry().names(), "this environment never installed it"
