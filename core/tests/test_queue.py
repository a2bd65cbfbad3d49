"""Producer API against the real Redis: enqueue, idempotency, validation, status, admin."""

import attrs
import pytest
from jobq import InvalidOptions, InvalidPayload, PayloadTooLarge, QueueSpec, UnknownQueue
from jobq.queue import AsyncQueueManager, QueueManager
from jobq.storage import Storage


def noop(job):
    return None


@attrs.frozen(kw_only=True)
class Shot:
    bug_report_id: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z0-9-]{1,64}$"))
    size: int


SPEC = QueueSpec(name="shots", handler=noop, payload=Shot)
PLAIN = QueueSpec(name="plain", handler=noop)


def keys_of(rclient, prefix):
    return sorted(k.decode() for k in rclient.scan_iter(match=f"{prefix}:*"))


@pytest.fixture
def qm(jobq_settings):
    m = QueueManager(jobq_settings, [SPEC, PLAIN])
    yield m
    m.shutdown()


def test_add_and_get_job(qm):
    job = qm.add_job("plain", "job-1", {"a": 1}, priority=5, retries=2)
    assert (job.id, job.state, job.data) == ("job-1", "waiting", {"a": 1})
    got = qm.get_job("plain", "job-1")
    assert got.data == {"a": 1} and got.options.priority == 5 and got.options.retries == 2
    assert got.created_at is not None and got.attempts == 0
    assert qm.get_job_status("plain", "job-1") == "waiting"
    assert qm.get_job("plain", "nope") is None


def test_same_id_is_idempotent(qm, rclient, jobq_settings):
    first = qm.add_job("plain", "dup", {"v": 1})
    again = qm.add_job("plain", "dup", {"v": 2})
    assert again.data == {"v": 1} and again.created_at == pytest.approx(first.created_at, abs=0.01)
    assert qm.get_queue_metrics("plain")["waiting"] == 1
    assert rclient.llen(f"{jobq_settings.prefix}:{{plain}}:wait") == 1


def test_bulk_add_and_generated_ids(qm):
    jobs = qm.add_jobs("plain", [(None, {"i": i}) for i in range(500)])
    assert len({j.id for j in jobs}) == 500
    assert qm.get_queue_metrics("plain")["waiting"] == 500


def test_delayed_job_status(qm):
    job = qm.add_job("plain", "later", {}, delay=60)
    assert job.state == "delayed" and qm.get_job_status("plain", "later") == "delayed"
    assert qm.get_queue_metrics("plain")["delayed"] == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [({"bugReportId": "../etc", "size": 1}, "bugReportId"), ({"bugReportId": "ok"}, "size"),
     ({"bugReportId": "ok", "size": "big"}, "size"), ({"bugReportId": "ok", "size": 1, "zz": 1}, "zz")],
)
def test_invalid_payload_names_the_field_and_writes_nothing(qm, rclient, jobq_settings, data, field):
    with pytest.raises(InvalidPayload) as err:
        qm.add_job("shots", "s1", data)
    assert field in str(err.value)
    assert keys_of(rclient, jobq_settings.prefix) == []


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [({"retries": -1}, InvalidOptions), ({"retries": 1.5}, InvalidOptions), ({"priority": 5000}, InvalidOptions),
     ({"delay": -3}, InvalidOptions), ({"timeout": 0}, InvalidOptions), ({"colour": "red"}, InvalidOptions)],
)
def test_bad_options_refused(qm, rclient, jobq_settings, kwargs, exc):
    with pytest.raises(exc):
        qm.add_job("plain", "x", {}, **kwargs)
    assert keys_of(rclient, jobq_settings.prefix) == []


@pytest.mark.parametrize("job_id", ["../../x", "a/b", "a:b", "", "x" * 200, "a\x00b", "\uff0e\uff0e", "ok\n"])
def test_bad_job_ids_refused(qm, job_id):
    with pytest.raises(InvalidOptions):
        qm.add_job("plain", job_id, {})


def test_names_with_a_trailing_newline_are_refused(qm, rclient, jobq_settings):
    with pytest.raises(InvalidOptions, match="queue name"):
        QueueSpec(name="screenshots\n", handler=noop)
    with pytest.raises(UnknownQueue, match="invalid queue name"):
        qm.add_job("plain\n", "x", {})
    with pytest.raises(InvalidOptions, match="job id"):
        qm.add_job("plain", "ok\n", {})
    assert keys_of(rclient, jobq_settings.prefix) == []


def test_non_json_data_refused(qm, rclient, jobq_settings):
    with pytest.raises(InvalidPayload, match="JSON"):
        qm.add_job("plain", "x", {"when": object()})
    with pytest.raises(InvalidPayload):
        qm.add_job("plain", "x", {"n": float("nan")})
    assert keys_of(rclient, jobq_settings.prefix) == []


def test_unknown_queue_refused_until_a_worker_announces_it(jobq_settings, rclient):
    qm = QueueManager(jobq_settings)
    with pytest.raises(UnknownQueue, match="ghost"):
        qm.add_job("ghost", None, {})
    assert keys_of(rclient, jobq_settings.prefix) == []
    rclient.sadd(f"{jobq_settings.prefix}:queues", "ghost")
    assert qm.add_job("ghost", None, {}).state == "waiting"
    assert "ghost" in qm.list_queues()
    qm.shutdown()


def test_payload_limit(jobq_settings, rclient):
    qm = QueueManager(attrs.evolve(jobq_settings, max_payload_bytes=1000), [PLAIN])
    with pytest.raises(PayloadTooLarge):
        qm.add_job("plain", "big", {"x": "y" * 2000})
    assert keys_of(rclient, jobq_settings.prefix) == []


def test_large_payload_goes_to_storage(jobq_settings, rclient):
    settings = attrs.evolve(jobq_settings, claim_check_bytes=100)
    qm = QueueManager(settings, [PLAIN])
    data = {"blob": "z" * 5000}
    job = qm.add_job("plain", "big", data)
    raw = rclient.hget(f"{settings.prefix}:{{plain}}:job:big", "data")
    assert raw == b"" and job.payload_ref.startswith("_payloads/plain/big-")
    assert Storage.from_settings(settings).exists(job.payload_ref)
    assert qm.remove_job("plain", "big")
    assert rclient.lrange(f"{settings.prefix}:{{plain}}:gc", 0, -1) == [job.payload_ref.encode()]


def test_pause_resume_and_metrics(qm):
    qm.add_jobs("plain", [(None, {}) for _ in range(3)])
    qm.pause_queue("plain")
    m = qm.get_queue_metrics("plain")
    assert (m["waiting"], m["paused"]) == (0, 3)
    j = qm.add_job("plain", "p1", {})
    assert qm.get_job_status("plain", j.id) == "paused"
    qm.resume_queue("plain")
    assert qm.get_queue_metrics("plain")["waiting"] == 4
    stats = qm.get_queue_stats()
    assert set(stats) >= {"plain", "shots"}


def test_health_check_without_workers(qm):
    report = qm.health_check()
    assert report["redis"] is True and report["healthy"] is False


def test_health_check_redis_down(jobq_settings):
    qm = QueueManager(attrs.evolve(jobq_settings, redis_url="redis://127.0.0.1:1/0", socket_timeout=1))
    report = qm.health_check()
    assert report == {"healthy": False, "redis": False, "error": report["error"], "workers": []}


def test_secret_fields_are_stored_apart(jobq_settings, rclient):
    spec = QueueSpec(name="sync", handler=noop, secret_fields=("credentials",))
    qm = QueueManager(jobq_settings, [spec])
    qm.add_job("sync", "s1", {"credentials": {"token": "canary-secret-123"}, "x": 1})
    job = qm.get_job("sync", "s1")
    assert job.data == {"credentials": "[redacted]", "x": 1}
    h = rclient.hgetall(f"{jobq_settings.prefix}:{{sync}}:job:s1")
    assert b"canary-secret-123" not in h[b"data"] and b"canary-secret-123" in h[b"secrets"]


def test_remove_job(qm):
    qm.add_job("plain", "r1", {})
    assert qm.remove_job("plain", "r1") is True
    assert qm.get_job("plain", "r1") is None and qm.get_queue_metrics("plain")["waiting"] == 0
    assert qm.remove_job("plain", "r1") is False


def test_events_stream(qm):
    qm.add_job("plain", "e1", {})
    events = qm.read_events("plain")
    assert events[-1]["event"] == "added" and events[-1]["jobId"] == "e1"


async def test_async_manager_same_api(jobq_settings):
    m = AsyncQueueManager(jobq_settings, [PLAIN])
    job = await m.add_job("plain", "a1", {"k": "v"})
    assert (await m.get_job("plain", "a1")).data == {"k": "v"} and job.state == "waiting"
    assert (await m.get_queue_metrics("plain"))["waiting"] == 1
    await m.shutdown()


def test_keys_share_one_cluster_slot(jobq_settings):
    from jobq.keys import QUEUE_KEYS, QueueKeys
    from redis.crc import key_slot

    k = QueueKeys("jobq", "screenshots")
    slots = {key_slot(getattr(k, n).encode()) for n in QUEUE_KEYS} | {key_slot(k.job("abc").encode())}
    assert len(slots) == 1
    assert key_slot(QueueKeys("jobq", "replays").wait.encode()) != slots.pop()


def test_job_name_is_kept(qm):
    job = qm.add_job("plain", "named", {}, name="resize")
    assert job.name == "resize" and qm.get_job("plain", "named").name == "resize"


def test_payload_scalars_are_strict(qm):
    with pytest.raises(InvalidPayload, match=r"expected a string, got int @ data\.bugReportId"):
        qm.add_job("shots", None, {"bugReportId": 7, "size": 1})
    with pytest.raises(InvalidPayload, match="expected an integer"):
        qm.add_job("shots", None, {"bugReportId": "a", "size": "1"})
    with pytest.raises(InvalidPayload, match="expected an integer"):
        qm.add_job("shots", None, {"bugReportId": "a", "size": True})


def test_queue_payload_limit(jobq_settings):
    spec = QueueSpec(name="small", handler=noop, max_payload_bytes=50)
    qm = QueueManager(jobq_settings, [spec])
    with pytest.raises(PayloadTooLarge, match="small"):
        qm.add_job("small", None, {"x": "y" * 100})
    assert qm.add_job("small", None, {"x": 1}).state == "waiting"


def test_settings_repr_hides_redis_password():
    from jobq import Settings

    text = repr(Settings(redis_url="redis://app:hunter22@db:6379/0")) + repr(Settings(redis_url="redis://:pw42@h/0"))
    assert "hunter22" not in text and "pw42" not in text and "db:6379" in text


def test_duplicate_id_with_large_payload_keeps_the_original(jobq_settings):
    settings = attrs.evolve(jobq_settings, claim_check_bytes=100)
    qm = QueueManager(settings, [PLAIN])
    first = qm.add_job("plain", "same", {"v": "a" * 500})
    again = qm.add_job("plain", "same", {"v": "b" * 500})
    assert again.payload_ref == first.payload_ref
    storage = Storage.from_settings(settings)
    assert storage.get(first.payload_ref) == b'{"v":"' + b"a" * 500 + b'"}'
    assert storage.list("_payloads/plain") == [first.payload_ref]
