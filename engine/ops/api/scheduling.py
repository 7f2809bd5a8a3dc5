"""GET /api/scheduler/status, POST /api/scheduler/run and PUT /api/scheduler/job: the scheduler's jobs, through
the same engine.ops.scheduler functions as `python -m engine scheduler` and the Pipeline page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictFloat, StrictStr

from engine.config import PipelineConfig
from engine.ops import scheduler
from engine.ops.api.answers import InvalidValueError, JsonBody, NotFoundError, clip, ok
from engine.ops.api.deps import ConfigPathDep, WorkspaceDep
from engine.ops.jobs import JOB_IDS
from engine.ops.scheduler import MAX_INTERVAL_MINUTES

router = APIRouter()


class RunJobRequest(JsonBody):
    job_id: StrictStr = Field(description="mining_code, quality_check, dedup_cleanup or export_training")
    wait: StrictBool = Field(False, description="true: run now and answer with the finished run (200); "
                                                "false: start it in the background and answer with its run id (202)")


class ConfigureJobRequest(JsonBody):
    job_id: StrictStr
    enabled: StrictBool | None = None
    interval_minutes: StrictFloat | None = Field(None, gt=0, le=MAX_INTERVAL_MINUTES,
                                                 description="how often the job runs, in minutes (at most a year)")


def known_job(job_id: str) -> None:
    """404 for an id that is not a job, before anything reads or writes the workspace."""
    if job_id not in JOB_IDS:
        raise NotFoundError(f"There is no job {clip(job_id)!r}; the jobs are {', '.join(JOB_IDS)}.")


@router.get("/scheduler/status", summary="Whether a scheduler runs for this workspace, and every job")
def scheduler_status(ws: WorkspaceDep, config_path: ConfigPathDep) -> JSONResponse:
    return ok(scheduler.scheduler_status(PipelineConfig.load(config_path), ws.root))


@router.post("/scheduler/run", summary="Run a job now", status_code=202,
             responses={200: {"description": "wait: the finished run"}, 404: {"description": "no such job"},
                        409: {"description": "the job is already running"}})
def scheduler_run(body: RunJobRequest, ws: WorkspaceDep, config_path: ConfigPathDep) -> JSONResponse:
    config = PipelineConfig.load(config_path)
    known_job(body.job_id)
    if body.wait:
        return ok(scheduler.run_job(config, ws.root, body.job_id, trigger="manual"))
    run_id = scheduler.submit_job(config, ws.root, body.job_id, trigger="manual")
    return ok({"run_id": run_id, "job_id": body.job_id, "status": "running"}, status_code=202)


@router.put("/scheduler/job", summary="Enable, disable or re-time a job (kept in the workspace)",
            responses={404: {"description": "no such job"}, 422: {"description": "a bad value"}})
def scheduler_job(body: ConfigureJobRequest, ws: WorkspaceDep, config_path: ConfigPathDep) -> JSONResponse:
    if body.enabled is None and body.interval_minutes is None:
        raise InvalidValueError("Say what to change: give enabled (true or false), interval_minutes, or both.")
    config = PipelineConfig.load(config_path)
    known_job(body.job_id)
    minutes = body.interval_minutes
    if minutes is not None and minutes.is_integer():
        minutes = int(minutes)  # 360, not 360.0, in the stored override and the answer
    return ok(scheduler.configure_job(config, ws.root, body.job_id, enabled=body.enabled,
                                      interval_minutes=minutes))
