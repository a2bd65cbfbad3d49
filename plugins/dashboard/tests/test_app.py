"""The dashboard's pages and actions through Starlette's test client against the real Redis."""

from __future__ import annotations

import html

import pytest
import redis
from dashboard_support import PASSWORDS, SPEC, DashPlugin, csrf_of, sign_in
from jobq import hookimpl
from jobq.keys import queues_key
from jobq.plugins import PluginHost
from jobq.waiting import wait_until
from jobq_dashboard.app import create_app
from jobq_dashboard.auth import LOGIN_LIMIT
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

pytestmark = pytest.mark.timeout(60)


def failed_job(jobq_harness, manager, job_id, **data):
    if not jobq_harness.serves(SPEC.name):
        jobq_harness.start(SPEC)
    manager.add_job(SPEC.name, job_id, {"always": True, **data})
    return jobq_harness.wait(SPEC.name, job_id)


def test_pages_need_sign_in_and_carry_security_headers(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    for path in ("/workers", "/plugins", "/audit", "/queues/dash", "/queues/dash/jobs/x1"):
        assert client.get(path, follow_redirects=False).status_code == 303
    post = client.post("/queues/dash/pause", data={}, follow_redirects=False)
    assert post.status_code == 401


def test_sign_in_sets_a_safe_cookie_and_logout_ends_it(client):
    r = sign_in(client, "ada")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
    page = client.get("/")
    assert page.status_code == 200 and "ada (admin)" in page.text
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_failed_sign_ins_are_throttled_per_user_and_address(client):
    for _ in range(LOGIN_LIMIT):
        assert sign_in(client, "ada", "wrong").status_code == 401
    r = sign_in(client, "ada")  # the right password no longer helps from this address
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert sign_in(client, "vic").status_code == 303  # another user is not locked out
    assert sign_in(client, "nobody", "x").status_code == 401


def test_login_refuses_missing_csrf_and_open_redirects(client):
    client.get("/login")
    r = client.post("/login", data={"username": "ada", "password": PASSWORDS["ada"]}, follow_redirects=False)
    assert r.status_code == 403
    page = client.get("/login?next=//evil.example/x")
    r = client.post("/login", data={"username": "ada", "password": PASSWORDS["ada"], "csrf": csrf_of(page.text),
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_overview_counts_match_the_manager(admin, manager, jobq_harness):
    failed_job(jobq_harness, manager, "f1")
    manager.add_job("dash", "d1", {"n": 1}, delay=3600)
    r = admin.get("/")
    stats = manager.get_queue_stats()["dash"]
    assert stats["failed"] == 1 and stats["delayed"] == 1
    row = r.text.split('data-queue="dash"', 1)[1].split("</tr>", 1)[0]
    for state in ("waiting", "active", "delayed", "completed", "failed", "paused"):
        cell = row.split(f'data-count="{state}"', 1)[1].split("</a>", 1)[0]
        assert cell.endswith(f">{stats[state]}"), (state, cell)
    assert "1 failed" in row  # from the per-minute history


def test_admin_retries_a_failed_job_and_the_action_is_audited(admin, manager, jobq_harness):
    jobq_harness.start(SPEC)
    manager.add_job("dash", "r1", {"fail_first": True})
    jobq_harness.wait("dash", "r1")
    page = admin.get("/queues/dash/jobs/r1")
    assert ">failed<" in page.text and ">Retry</button>" in page.text
    r = admin.post("/queues/dash/jobs/r1/retry", data={"csrf": csrf_of(page.text)},
                   headers={"accept": "application/json"})
    assert r.status_code == 200 and r.json()["state"] in ("waiting", "active", "completed")
    assert jobq_harness.wait("dash", "r1").state == "completed"
    audit = admin.get("/audit").text
    assert "ada" in audit and "retry" in audit and "Retried job r1" in audit


def test_viewer_sees_no_actions_and_is_refused(client, manager, jobq_harness):
    failed_job(jobq_harness, manager, "v1")
    assert sign_in(client, "vic").status_code == 303
    page = client.get("/queues/dash/jobs/v1")
    for word in ("Retry", "Remove", "Pause", "Resume"):
        assert f">{word}</button>" not in page.text
    assert ">Pause</button>" not in client.get("/queues/dash").text
    r = client.post("/queues/dash/jobs/v1/retry", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 403
    assert manager.get_job("dash", "v1").state == "failed"


def test_post_without_csrf_is_refused(admin, manager, jobq_harness):
    failed_job(jobq_harness, manager, "c1")
    assert admin.post("/queues/dash/jobs/c1/retry", data={}).status_code == 403
    assert admin.post("/queues/dash/jobs/c1/retry", data={"csrf": "forged"}).status_code == 403
    assert manager.get_job("dash", "c1").state == "failed"


def test_pause_resume_promote_remove_purge(admin, manager, jobq_settings):
    manager.add_job("dash", "p1", {}, delay=3600)
    manager.add_job("dash", "p2", {}, delay=3600)
    token = csrf_of(admin.get("/queues/dash").text)
    post = lambda path, **form: admin.post(path, data={"csrf": token, **form},  # noqa: E731
                                           headers={"accept": "application/json"})
    assert post("/queues/dash/pause").json()["state"] == "paused"
    assert manager.get_queue_metrics("dash")["paused"] == 0 and ">Resume</button>" in admin.get("/queues/dash").text
    assert post("/queues/dash/resume").json()["state"] == "running"
    assert post("/queues/dash/jobs/p1/promote").json()["state"] == "waiting"
    assert post("/queues/dash/jobs/p2/remove").json()["state"] == "removed"
    assert manager.get_job("dash", "p2") is None
    client = redis.Redis.from_url(jobq_settings.redis_url)
    k = manager.keys("dash")
    client.zadd(k.failed, {"x1": 1, "x2": 2})
    client.hset(k.job("x1"), mapping={"state": "failed"})
    assert "<strong id=\"confirm-count\">2</strong>" in admin.get("/queues/dash/confirm/purge-failed").text
    assert "Not purged" in post("/queues/dash/purge", state="failed", confirm="wrong").json()["message"]
    assert client.zcard(k.failed) == 2
    assert post("/queues/dash/purge", state="failed", confirm="dash").json()["message"].startswith("Purged 2")
    assert client.zcard(k.failed) == 0
    client.close()


def test_queue_page_windows_and_filters(admin, manager):
    manager.add_jobs("dash", [(f"job{i:03d}", {"n": i}, {"name": "even" if i % 2 == 0 else "odd"})
                              for i in range(120)])
    first = admin.get("/queues/dash?state=waiting").text
    assert first.count('/queues/dash/jobs/job') == 50 and "job119" in first and "job069" not in first
    assert "offset=50" in first
    second = admin.get("/queues/dash?state=waiting&offset=50").text
    assert "job069" in second and "job119" not in second
    odd = admin.get("/queues/dash?state=waiting&name=odd&id=job1").text
    shown = [line for line in odd.split("\n") if "/queues/dash/jobs/" in line]
    assert len(shown) == 10 and all("job1" in s for s in shown)  # job101 .. job119, odd ones
    assert "Filtered: each page looks at up to" in odd
    assert admin.get("/queues/dash?state=bogus").status_code == 400
    assert admin.get("/queues/bad%20name").status_code == 404


def test_filtered_listing_spends_a_bounded_scan_budget(admin, manager, monkeypatch):
    from jobq_dashboard import data

    monkeypatch.setattr(data, "SCAN_LIMIT", 30)
    manager.add_jobs("dash", [(f"b{i:03d}", {"n": i}, {"name": "hit" if i < 5 else "miss"}) for i in range(100)])
    first = admin.get("/queues/dash?state=waiting&name=hit").text  # newest first: the hits are the oldest
    assert "/queues/dash/jobs/b0" not in first and "this one looked at 30 from position 0" in first
    assert "offset=30" in first
    last = admin.get("/queues/dash?state=waiting&name=hit&offset=90").text
    assert all(f"/queues/dash/jobs/b00{i}" in last for i in range(5)) and "Next page" not in last


def test_failed_filter_by_reason_code(admin, manager, jobq_harness):
    failed_job(jobq_harness, manager, "k1", code="ERR_ONE")
    failed_job(jobq_harness, manager, "k2", code="ERR_TWO")
    text = admin.get("/queues/dash?state=failed&code=ERR_TWO").text
    assert "/queues/dash/jobs/k2" in text and "/queues/dash/jobs/k1" not in text


def test_hostile_job_renders_as_text(admin, manager, jobq_harness):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    failed_job(jobq_harness, manager, "h1", html=evil, message=evil, code="ERR_<b>")
    manager.add_job("dash", "h2", {"x": 1}, name=evil)
    for path in ("/queues/dash/jobs/h1", "/queues/dash?state=failed", "/queues/dash?state=waiting"):
        text = admin.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    assert html.escape("<script>alert(1)</script>", quote=False) in admin.get("/queues/dash/jobs/h1").text


def test_job_page_shows_redacted_secrets_and_timeline(admin, manager, jobq_harness):
    failed_job(jobq_harness, manager, "s1", api_token="tok-123456", password="hunter22", user="bob")
    text = admin.get("/queues/dash/jobs/s1").text
    assert "tok-123456" not in text and "hunter22" not in text and "bob" in text and "[redacted]" in text
    assert ">failed<" in text and "ERR_FIRST" in text and "Traceback" in text
    assert "<h2>Failed attempts</h2>" in text and "stack (end)" in text
    assert admin.get("/queues/dash/jobs/nope").status_code == 404


def test_workers_page(admin, jobq_harness):
    w = jobq_harness.start(SPEC)
    row = admin.get("/workers").text.split(f"<td>{w.id}</td>", 1)[1].split("</tr>", 1)[0]
    assert "<td>dash</td>" in row and '<td class="num">4</td>' in row and "<td>yes</td>" in row


class Broken:
    @hookimpl
    def jobq_queues(self):
        raise RuntimeError("<b>config missing</b>")


def test_plugins_page_shows_queues_and_broken_plugins(jobq_settings, users):
    host = PluginHost(group="jobq.none").load(extra=[DashPlugin(), Broken()])
    app = create_app(jobq_settings, users=users, secret_key="k", host=host)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        sign_in(c, "vic")
        text = c.get("/plugins").text
    assert "<td>dashplugin</td>" in text and "<td>dash</td>" in text
    assert "BROKEN: jobq_queues() raised RuntimeError: &lt;b&gt;config missing&lt;/b&gt;" in text


def test_history_for_the_overview_chart(admin, manager, jobq_harness):
    jobq_harness.start(SPEC)
    for i in range(3):
        manager.add_job("dash", f"ok{i}", {"n": i})
    for i in range(3):
        jobq_harness.wait("dash", f"ok{i}")
    text = admin.get("/").text
    assert "3 completed" in text and "<rect" in text


def test_mounted_under_a_prefix(jobq_settings, users, plugin_host, manager):
    inner = create_app(jobq_settings, users=users, secret_key="k", host=plugin_host)
    outer = Starlette(routes=[Mount("/jobq", app=inner)])
    with TestClient(outer, base_url="http://127.0.0.1") as c:
        r = c.get("/jobq/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/jobq/login")
        assert sign_in(c, "ada", prefix="/jobq").headers["location"] == "/jobq/"
        page = c.get("/jobq/").text
        assert 'href="/jobq/static/dashboard.css"' in page and 'href="/jobq/workers"' in page
        assert c.get("/jobq/static/dashboard.js").status_code == 200


def test_insecure_mode_says_so_on_every_page(jobq_settings, plugin_host, manager):
    app = create_app(jobq_settings, users={}, insecure_no_auth=True, host=plugin_host)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for path in ("/", "/workers", "/queues/dash"):
            assert "Authentication is OFF" in c.get(path).text


def test_oversized_body_is_refused(admin):
    assert admin.post("/login", content=b"x" * 70_000,
                      headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413

    def chunks():  # no Content-Length: the size is counted as the body arrives
        for _ in range(20):
            yield b"a=" + b"x" * 8000 + b"&"

    r = admin.post("/queues/dash/pause", content=chunks(),
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_queue_listed_from_redis(admin, jobq_settings):
    client = redis.Redis.from_url(jobq_settings.redis_url)
    client.sadd(queues_key(jobq_settings.prefix), "other")
    client.close()
    row = admin.get("/").text.split('data-queue="other"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">0</td>' in row  # a queue no worker serves now: counts, no live workers


def test_retry_all_failed_after_showing_how_many(admin, manager, jobq_harness):
    for i in range(3):
        failed_job(jobq_harness, manager, f"all{i}")
    page = admin.get("/queues/dash/confirm/retry-failed").text
    assert '<strong id="confirm-count">3</strong>' in page and ">Retry 3 job(s)</button>" in page
    r = admin.post("/queues/dash/retry-failed", data={"csrf": csrf_of(page)}, follow_redirects=True)
    assert "Retried 3 failed job(s) of dash" in r.text
    for i in range(3):  # "always" fails again: each went back to waiting and ran once more
        wait_until(lambda i=i: manager.get_job("dash", f"all{i}").attempts == 2, 15, message="re-run")


def test_behind_a_proxy_with_root_path(app):
    with TestClient(app, base_url="http://127.0.0.1", root_path="/jobq") as c:
        r = c.get("/", follow_redirects=False)
        assert r.headers["location"] == "/jobq/login?next=%2Fjobq%2F"
        assert 'action="/jobq/login"' in c.get("/login").text


def test_blocked_jobs_have_their_tab(admin, manager):
    manager.add_job("dash", "first", {}, delay=3600)
    manager.add_job("dash", "second", {}, depends_on=[("dash", "first")])
    text = admin.get("/queues/dash?state=blocked").text
    assert "/queues/dash/jobs/second" in text and "/queues/dash/jobs/first" not in text
    assert '<span data-count="blocked">1</span>' in text


def test_cancel_a_delayed_job(admin, manager):
    manager.add_job("dash", "cx", {}, delay=3600)
    page = admin.get("/queues/dash/jobs/cx").text
    assert ">Cancel</button>" in page and ">Run now</button>" in page
    r = admin.post("/queues/dash/jobs/cx/cancel", data={"csrf": csrf_of(page)}, follow_redirects=True)
    assert "Cancelled job cx (was delayed)" in r.text
    assert manager.get_job("dash", "cx").state not in ("delayed", "waiting")
    assert ">Cancel</button>" not in r.text


def test_a_sign_in_ends_after_session_hours_even_when_used(admin, app, monkeypatch):
    import time as time_module

    assert admin.get("/", follow_redirects=False).status_code == 200
    later = time_module.time() + 8 * 3600 + 5
    monkeypatch.setattr("jobq_dashboard.app.time.time", lambda: later)
    assert admin.get("/", follow_redirects=False).status_code == 303


def test_queue_page_lists_its_schedules(admin, manager):
    from jobq import Schedule

    manager.add_schedule("dash", Schedule(name="nightly", cron="0 3 * * *", data={"n": 1}))
    manager.add_schedule("dash", Schedule(name="often", every=90))
    text = admin.get("/queues/dash").text
    assert "<h2>Schedules</h2>" in text and "<td>cron 0 3 * * * (UTC)</td>" in text and "<td>every 90 s</td>" in text


def test_a_huge_payload_is_not_read(admin, manager, jobq_settings, monkeypatch):
    from jobq_dashboard import data

    monkeypatch.setattr(data, "MAX_FIELD_BYTES", 1000)
    manager.add_job("dash", "big", {"blob": "<i>" + "x" * 5000 + "</i>"}, delay=3600)
    text = admin.get("/queues/dash/jobs/big").text
    assert "x" * 1000 not in text and "bytes: too large to show here" in text and ">delayed<" in text


def test_queue_page_shows_flow_control_and_the_busiest_groups(admin, manager):
    manager.add_jobs("dash", [(f"p{i}", {"n": i}, {"group": "project-big"}) for i in range(7)]
                     + [("s0", {"n": 0}, {"group": "project-small"})])
    manager.pause_group("dash", "project-small")
    manager.redis.hset(manager.keys("dash").meta, "rate", "5/1000")  # what a worker with rate_limit=(5, 1) announces
    manager.redis.zadd(manager.keys("dash").limits, {"vendor:acct": 2**40})  # a RateLimited hold
    page = admin.get("/queues/dash").text
    assert 'id="flow-control"' in page and "rate-limited</span>" in page
    assert "Rate limit 5 per 1.0 s" in page and "1 limit key(s) held" in page
    rows = [line for line in page.split("\n") if line.startswith("<tr><td>project-")]
    assert "project-big" in rows[0] and ">7<" in rows[0] and "paused" in rows[1]
    assert "<script" not in page.split('id="flow-control"')[1].split("</section>")[0]
