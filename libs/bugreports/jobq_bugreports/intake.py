"""Creating a report and enqueueing its jobs as one step, and reading both back.

The report row is inserted in a transaction committed only after every job is in Redis: if Redis
is down, nothing is created. Job ids derive from the report id, so a job can never be enqueued
twice for one report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import redis
from jobq import ConfigError, EnqueueError, FlowJob, InvalidPayload, PayloadTooLarge, QueueSpec, RawJSON
from jobq import QueueUnavailable as EnqueueUnavailable
from jobq.queue import QueueManager
from jobq.serialization import structure_payload

from .projects import NO_PROJECT_CONFIG, Project
from .store import ReportStore, field_problem, new_report_id

log = logging.getLogger(__name__)

SCREENSHOTS, REPLAYS, INTEGRATIONS, NOTIFICATIONS = "screenshots", "replays", "integrations", "notifications"
QUEUES = (SCREENSHOTS, REPLAYS, INTEGRATIONS, NOTIFICATIONS)

_SCREENSHOT = re.compile(r"data:image/(png|jpeg|webp);base64,")
_BODY_FIELDS = {"title", "description", "severity", "url", "screenshot", "sessionReplay"}
# Where a payload field rejected by a plugin's payload class came from in the request body.
_PAYLOAD_TO_BODY = {"screenshotData": "screenshot", "replayData": "sessionReplay.events"}


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PATH_KEY = re.compile(r"(?i).*(path|dir|file)")


def public_only(value: Any, key: str = "") -> Any:
    """``value`` with every storage location that is not a public URL replaced by ``None``:
    ``file:`` URLs, other non-HTTP URLs (``s3://``...), and absolute paths under keys named like
    paths. Workers record where they stored outputs; only HTTP(S) URLs are meant for clients."""
    if isinstance(value, str):
        scheme = _SCHEME.match(value)  # a prefix: the URL's scheme
        if scheme and scheme.group(1).lower() not in ("http", "https") and (
                scheme.group(1).lower() == "file" or value[scheme.end():].startswith("//")):
            return None
        if value.startswith("/") and _PATH_KEY.fullmatch(key):
            return None
        return value
    if isinstance(value, dict):
        return {k: public_only(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [public_only(v, key) for v in value]
    return value


class RequestInvalid(Exception):
    """The request body is unusable; ``errors`` lists ``{"field", "message"}`` pairs."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class QueueUnavailable(Exception):
    """Redis (or the payload storage) could not take the jobs; the report was not created."""


class StoreUnavailable(Exception):
    """The report database could not be reached (or stayed locked); nothing was created."""


class BodyTooLarge(Exception):
    pass


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class NewReport:
    title: str
    description: str = ""
    severity: str = "medium"
    url: str | None = None
    screenshot: str | None = None
    replay_events: list[Any] | RawJSON | None = None


@attrs.frozen(kw_only=True)
class PlannedJob:
    queue: str
    job_id: str
    data: dict[str, Any]
    slot: str | None = None  # the integration/notification name; None for screenshots and replays


def parse_report(body: Any) -> NewReport:
    """Validate a ``POST /api/v1/reports`` body, collecting every bad field at once."""
    if not isinstance(body, dict):
        raise RequestInvalid([{"field": "(body)", "message": "must be a JSON object"}])
    errors: list[dict[str, str]] = [
        {"field": k, "message": f"unknown field; allowed: {', '.join(sorted(_BODY_FIELDS))}"}
        for k in sorted(set(body) - _BODY_FIELDS)
    ]
    description = body.get("description", "")
    severity = body.get("severity", "medium")
    for name, value in (("title", body.get("title")), ("description", description),
                        ("severity", severity), ("url", body.get("url"))):
        problem = "is required" if name == "title" and "title" not in body else field_problem(name, value)
        if problem:
            errors.append({"field": name, "message": problem})
    screenshot = body.get("screenshot")
    if screenshot is not None:
        if not isinstance(screenshot, str) or not _SCREENSHOT.match(screenshot):  # a prefix: the data URL header
            errors.append({"field": "screenshot",
                           "message": "must be a data URL: data:image/(png|jpeg|webp);base64,..."})
        elif len(screenshot) == _SCREENSHOT.match(screenshot).end():  # type: ignore[union-attr]  # prefix
            errors.append({"field": "screenshot", "message": "has no image data"})
    events = None
    replay = body.get("sessionReplay")
    if replay is not None:
        if not isinstance(replay, dict):
            errors.append({"field": "sessionReplay", "message": "must be an object with an events list"})
        else:
            errors.extend({"field": f"sessionReplay.{k}", "message": "unknown field; allowed: events"}
                          for k in sorted(set(replay) - {"events"}))
            events = replay.get("events")
            if isinstance(events, RawJSON):
                pass  # read from the body one event at a time, each checked to be an object
            elif not isinstance(events, list):
                errors.append({"field": "sessionReplay.events", "message": "must be a list of events"})
                events = None
            else:
                bad = next((i for i, e in enumerate(events) if not isinstance(e, dict)), None)
                if bad is not None:
                    errors.append({"field": f"sessionReplay.events[{bad}]", "message": "must be an object"})
                    events = None
    if errors:
        raise RequestInvalid(errors)
    return NewReport(
        title=body["title"], description=description, severity=severity, url=body.get("url"),
        screenshot=screenshot, replay_events=events or None,
    )


def plan_jobs(report_id: str, project_id: str, new: NewReport, project: Project) -> list[PlannedJob]:
    """The jobs a new report needs, with ids derived from the report id, in enqueue order."""
    jobs: list[PlannedJob] = []
    if new.screenshot is not None:
        jobs.append(PlannedJob(queue=SCREENSHOTS, job_id=f"screenshot-{report_id}", data={
            "bugReportId": report_id, "projectId": project_id, "screenshotData": new.screenshot}))
    if new.replay_events:
        data: dict[str, Any] = {"bugReportId": report_id, "projectId": project_id}
        if project.replay_privacy is not None:  # before replayData: the worker masks events as it streams them
            data["privacy"] = project.replay_privacy
        data["replayData"] = new.replay_events
        jobs.append(PlannedJob(queue=REPLAYS, job_id=f"replay-{report_id}", data=data))
    summary = {"title": new.title, "description": new.description, "severity": new.severity, "url": new.url}
    for i in project.integrations:
        job_id = f"integration-{i.name}-{report_id}"
        jobs.append(PlannedJob(queue=INTEGRATIONS, job_id=job_id, slot=i.name, data={
            "bugReportId": report_id, "projectId": project_id, "platform": i.platform,
            "credentials": i.credentials, "config": i.config,
            # Screenshot and replay URLs exist only once those jobs finish; the integration reads
            # them from the report's metadata when it runs.
            "report": {**summary, "screenshotUrl": None, "replayUrl": None},
        }))
    for n in project.notifications:
        jobs.append(PlannedJob(queue=NOTIFICATIONS, job_id=f"notification-{n.name}-{report_id}", slot=n.name,
                               data={"bugReportId": report_id, "projectId": project_id, "type": n.type,
                                     "recipients": n.recipients, "event": "created", "report": summary}))
    return jobs


def jobs_map(jobs: Iterable[PlannedJob]) -> dict[str, Any]:
    """``{"screenshots": id, "replays": id, "integrations": {name: id}, "notifications": {name: id}}``."""
    out: dict[str, Any] = {}
    for j in jobs:
        if j.slot is None:
            out[j.queue] = j.job_id
        else:
            out.setdefault(j.queue, {})[j.slot] = j.job_id
    return out


def _body_field(error: str, queue: str) -> dict[str, str]:
    """Turn the core's ``<message> @ data.screenshotData`` into the request field it came from.

    A validator's message may quote the value (a 20 MB data URL): it is cut short.
    """
    message, sep, path = error.rpartition(" @ ")
    if not sep:
        message, path = error, "data"
    field = path.removeprefix("data").removeprefix(".")
    if not field:
        quoted = re.search(r"'([A-Za-z][A-Za-z0-9]*)'", message)
        field = quoted.group(1) if quoted else ""
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    if head in _PAYLOAD_TO_BODY:
        field = _PAYLOAD_TO_BODY[head] + field[len(head):]
    elif head == "report":
        field = field.removeprefix("report.")
    if len(message) > 300:
        message = message[:300] + "..."
    return {"field": field or "(body)", "message": f"refused by the {queue} queue: {message}"}


def check_project_payloads(projects: Mapping[str, Project], specs: Iterable[QueueSpec]) -> None:
    """Structure each project's integration and notification payloads (for a sample report) with the
    plugins' payload classes at start-up, so a misconfigured project stops the server instead of
    every report of that project being refused as if the client were at fault.

    :raises jobq.ConfigError: naming the project and entry, never the credentials.
    """
    by_name = {s.name: s for s in specs}
    sample = NewReport(title="sample", url="https://example.invalid/")
    for project_id, project in projects.items():
        for job in plan_jobs("sample", project_id, sample, project):
            spec = by_name.get(job.queue)
            if spec is None or spec.payload is None:
                continue
            try:
                structure_payload(job.data, spec.payload)
            except InvalidPayload as exc:
                problems = "; ".join(_body_field(e, job.queue)["field"] or "?" for e in exc.errors)
                raise ConfigError(f"project {project_id!r} {job.queue} entry {job.slot!r} is refused by the "
                                  f"installed {job.queue} plugin (fields: {problems})") from None


def fallback_specs() -> list[QueueSpec]:
    """Specs for the intake queues when their plugins are not installed in the API's environment.

    They validate nothing, but make sure integration credentials and notification recipients (webhook
    URLs carry tokens) are stored apart from the job record, and erased when the job ends, even so.
    """

    def not_here(job: Any) -> None:  # pragma: no cover - the API never runs jobs
        raise RuntimeError("an intake-only spec runs no jobs: install the plugin in the worker")

    secrets = {INTEGRATIONS: ("credentials",), NOTIFICATIONS: ("recipients",)}
    return [QueueSpec(name=q, handler=not_here, secret_fields=secrets.get(q, ())) for q in QUEUES]


class Intake:
    """What the API's handlers call: blocking, safe to call from many threads at once.

    :param store: where reports live.
    :param manager: a :class:`jobq.queue.QueueManager`; its specs validate payloads before anything
        is written.
    :param projects: per-project integrations and notifications.
    """

    def __init__(self, store: ReportStore, manager: QueueManager, projects: Mapping[str, Project]) -> None:
        self.store = store
        self.manager = manager
        self.projects = dict(projects)

    def create(self, project_id: str, body: Any) -> dict[str, Any]:
        """Create the report and enqueue its jobs, or neither.

        :raises RequestInvalid: a bad field, including one refused by a plugin's payload class.
        :raises BodyTooLarge: a job payload over ``JOBQ_MAX_PAYLOAD_BYTES``.
        :raises QueueUnavailable: Redis or the payload storage failed; nothing was created.
        """
        new = parse_report(body)
        report_id = new_report_id()
        planned = plan_jobs(report_id, project_id, new, self.projects.get(project_id, NO_PROJECT_CONFIG))
        self._validate_payloads(planned)
        try:
            self.manager.redis.ping()
        except redis.RedisError as exc:
            raise QueueUnavailable(f"Redis is unavailable ({type(exc).__name__})") from None
        added: list[PlannedJob] = []
        try:
            with self.store.pending_report(
                project_id=project_id, title=new.title, description=new.description, severity=new.severity,
                url=new.url, report_id=report_id, jobs=jobs_map(planned),
            ) as report:
                self._enqueue(planned, added)
        except PayloadTooLarge as exc:
            self._unwind(added)
            raise BodyTooLarge(str(exc)) from None
        except InvalidPayload as exc:
            self._unwind(added)
            raise RequestInvalid([_body_field(e, "job") for e in exc.errors]) from None
        except self.store.transient_errors as exc:
            self._unwind(added)
            log.warning("report for project %s not created: database error (%s)",
                        project_id, type(exc).__name__)
            raise StoreUnavailable(f"the report database is unavailable ({type(exc).__name__})") from None
        except (redis.RedisError, OSError, EnqueueUnavailable) as exc:
            self._unwind(added)
            log.warning("report for project %s not created: enqueue failed (%s)",
                        project_id, type(exc).__name__)
            raise QueueUnavailable(f"could not enqueue the report's jobs ({type(exc).__name__})") from None
        except BaseException:
            self._unwind(added)
            raise
        log.info("report %s created for project %s with jobs %s", report_id, project_id,
                 ", ".join(j.job_id for j in planned) or "none")
        return report

    def _enqueue(self, planned: list[PlannedJob], added: list[PlannedJob]) -> None:
        """The one place a report's jobs reach Redis, as one all-or-nothing flow: integrations and
        notifications wait for the screenshot and replay jobs (and run even if those fail), so a
        created issue carries every link that exists; none of the jobs starts unless all exist.
        ``added`` collects what is in, for :meth:`_unwind` if the flow fails halfway."""
        roots = [(j.queue, j.job_id) for j in planned if j.queue in (SCREENSHOTS, REPLAYS)]
        flow = []
        for j in sorted(planned, key=lambda j: QUEUES.index(j.queue)):
            waits = roots if j.queue not in (SCREENSHOTS, REPLAYS) else []
            # grouped by project: a flooding project cannot starve the others in any queue
            flow.append(FlowJob(j.queue, j.job_id, j.data, depends_on=waits, on_dependency_failure="run",
                                options={"group": j.data["projectId"]}))
        added.extend(planned)  # a flow that fails halfway leaves blocked jobs: take them back
        if flow:
            self.manager.add_flow(flow)

    def _validate_payloads(self, planned: list[PlannedJob]) -> None:
        """Structure every payload with its plugin's class before writing anything, so a payload one
        plugin refuses never leaves the others enqueued."""
        errors: list[dict[str, str]] = []
        for j in planned:
            spec = self.manager.specs.get(j.queue)
            if spec is None or spec.payload is None:
                continue
            try:
                structure_payload(j.data, spec.payload)
            except InvalidPayload as exc:
                errors.extend(_body_field(e, j.queue) for e in exc.errors)
        if errors:
            raise RequestInvalid(errors)

    def _unwind(self, added: list[PlannedJob]) -> None:
        """Best effort: take back the jobs of a report that is being rolled back."""
        for j in added:
            try:
                self.manager.remove_job(j.queue, j.job_id)
            except (redis.RedisError, EnqueueError) as exc:
                log.error("job %s of a rolled-back report is still queued: %s", j.job_id, type(exc).__name__)

    def show(self, project_id: str, report_id: str) -> dict[str, Any] | None:
        """The report with each job's state, progress, result and failure; ``None`` when the report is
        absent or belongs to another project. A job Redis no longer has (retention) or cannot be
        read (Redis down) shows ``"state": "unknown"``."""
        try:
            report = self.store.get_report(report_id)
        except self.store.transient_errors as exc:
            raise StoreUnavailable(f"the report database is unavailable ({type(exc).__name__})") from None
        if report is None or report["projectId"] != project_id:
            return None
        jobs: dict[str, Any] = {}
        for queue, entry in report.get("jobs", {}).items():
            if isinstance(entry, dict):
                jobs[queue] = {name: self._job_view(queue, job_id) for name, job_id in entry.items()}
            else:
                jobs[queue] = self._job_view(queue, entry)
        return {**report, "metadata": public_only(report.get("metadata", {})), "jobs": jobs}

    def erase(self, project_id: str, report_id: str) -> dict[str, Any] | None:
        """Erase a report of ``project_id`` and everything it produced (:mod:`.erasure`)."""
        from .erasure import erase_report

        try:
            return erase_report(self.store, self.manager, self.manager.storage, report_id, project_id=project_id)
        except self.store.transient_errors as exc:
            raise StoreUnavailable(f"the report database is unavailable ({type(exc).__name__})") from None

    def _job_view(self, queue: str, job_id: str) -> dict[str, Any]:
        try:
            job = self.manager.get_job(queue, job_id)
        except redis.RedisError:
            job = None
        if job is None:
            return {"id": job_id, "queue": queue, "state": "unknown"}
        return {
            "id": job_id, "queue": queue, "state": job.state, "progress": job.progress,
            "attempts": job.attempts, "result": public_only(job.result),
            "failure": {"code": job.failure.code, "message": job.failure.message} if job.failure else None,
            "createdAt": _iso(job.created_at), "startedAt": _iso(job.started_at),
            "finishedAt": _iso(job.finished_at),
        }

