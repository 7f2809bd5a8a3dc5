"""`python -m engine scheduler {start,status,list,run,configure,log} --config CFG [--workspace W] [--json]`

start      run the scheduler in the foreground (jobs on their intervals, the watcher triggering mining) until Ctrl-C
           or SIGTERM; prints what it scheduled and every run's result.
status     whether a scheduler is running for the workspace, and each job's next run and last result.
list       the jobs and the recent runs.
run        run one job now (--job ID) and print its result; exit 1 if it fails.
configure  change a job (--job ID --enable/--disable --interval-minutes M, or --reset), stored in the workspace.
log        the log of one run (--run N).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from datetime import datetime, timezone

from engine.cli import add_config_arguments, config_and_workspace
from engine.clock import utc_now
from engine.config import PipelineConfig
from engine.ops.jobs import JOB_IDS
from engine.ops.scheduler import (
    SchedulerService,
    configure_job,
    job_history,
    job_log,
    list_jobs,
    reset_job,
    run_job,
    scheduler_status,
)

HELP = "run the collection jobs on a schedule and on change; status, history, run one now"
DESCRIPTION = """The scheduler runs mining_code, quality_check, dedup_cleanup and export_training on their
    intervals (config scheduler.jobs, changed with the API or the Pipeline page) and mines as soon as the
    screenpipe database or a repository changes."""


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("start", "status", "list", "run", "configure", "log"),
                        help="start (foreground), status, list (jobs and recent runs), run --job ID, "
                             "configure --job ID, log --run N")
    add_config_arguments(parser)
    parser.add_argument("--job", help=f"the job to run or configure: {', '.join(JOB_IDS)}")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_const", const=True, dest="enabled", help="configure: enable it")
    switch.add_argument("--disable", action="store_const", const=False, dest="enabled", help="configure: disable it")
    parser.add_argument("--interval-minutes", type=float, help="configure: run it every M minutes (0.5 = 30 s)")
    parser.add_argument("--reset", action="store_true", help="configure: drop its overrides (back to the config)")
    parser.add_argument("--run", type=int, dest="run_id", help="the run whose log to print (see `list`)")
    parser.add_argument("--limit", type=int, default=10, help="runs shown by `list` (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON (start: one JSON object per line)")


# -- formatting --------------------------------------------------------------------------------------------------
def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _every(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:g} s"
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g} h"
    return f"{minutes:g} min"


def format_run(run: dict) -> str:
    took = f", {run['seconds']:.1f} s" if run.get("seconds") is not None else ""
    attempt = f", attempt {run['attempt']}" if run["attempt"] > 1 else ""
    head = f"run {run['run_id']} {run['job_id']} ({run['trigger']}{attempt}{took}): {run['status']}"
    return f"{head}: {run['summary']}" if run.get("summary") else head


def format_jobs(jobs: list[dict]) -> str:
    lines = [f"  {'job':<16} {'enabled':<8} {'every':<10} {'next run':<24} last run"]
    for job in jobs:
        every = _every(job["interval_minutes"]) + ("*" if "interval_minutes" in job["override"] else "")
        enabled = ("yes" if job["enabled"] else "no") + ("*" if "enabled" in job["override"] else "")
        next_run = _when(job["next_run_at"])
        if job.get("retry_at"):
            next_run = f"retry {_when(job['retry_at'])}"
        last = job["last_run"]
        last_text = "never"
        if last:
            last_text = f"{last['status']} {_when(last['started_at'])} ({last['trigger']})"
            if last.get("summary"):
                last_text += f": {last['summary']}"
        lines.append(f"  {job['job_id']:<16} {enabled:<8} {every:<10} {next_run:<24} {last_text}")
    if any(job["override"] for job in jobs):
        lines.append("  * set with configure_job (the API or the Pipeline page), overriding the config file")
    return "\n".join(lines)


def format_status(status: dict, start_command: str) -> str:
    if status["running"]:
        head = (f"Scheduler: running (pid {status['pid']}, since {_when(status['started_at'])}, "
                f"last heartbeat {_when(status['heartbeat_at'])})")
        watching = (f"Watching: {', '.join(status['watching'])}" if status["watching"]
                    else "Watching: nothing (scheduler.watch is false or no source exists)")
        head = f"{head}\n{watching}"
    else:
        head = (f"Scheduler: not running; start it with `{start_command}`"
                + (f" (last seen {_when(status['last_heartbeat_at'])})" if status.get("last_heartbeat_at") else ""))
        head += "\n(next run times are known only while it runs)"
    return f"Workspace: {status['workspace']}\n{head}\n\n{format_jobs(status['jobs'])}"


def format_history(runs: list[dict]) -> str:
    if not runs:
        return "No runs yet."
    lines = [f"  {'run':>5} {'job':<16} {'trigger':<9} {'try':>3} {'status':<8} {'started':<24} {'took':>8}  result"]
    for run in runs:
        took = f"{run['seconds']:.1f} s" if run["seconds"] is not None else "-"
        lines.append(f"  {run['run_id']:>5} {run['job_id']:<16} {run['trigger']:<9} {run['attempt']:>3} "
                     f"{run['status']:<8} {_when(run['started_at']):<24} {took:>8}  {run['summary']}")
    return "\n".join(lines)


# -- actions -----------------------------------------------------------------------------------------------------
def _print(data, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text, flush=True)


def _start(config: PipelineConfig, workspace, args: argparse.Namespace) -> int:
    def on_event(kind: str, data: dict) -> None:
        if args.json:
            print(json.dumps({"event": kind, **data}, default=str), flush=True)
            return
        stamp = utc_now().strftime("%H:%M:%S")
        if kind == "scheduled":
            text = (f"{data['job_id']}: every {_every(data['interval_minutes'])}, next {_when(data['next_run_at'])}"
                    if data["enabled"] else f"{data['job_id']}: disabled")
        elif kind == "run":
            text = format_run(data)
        elif kind == "watch":
            text = f"change in {', '.join(data['changed'])}" + (
                "; mining_code queued" if data["enabled"] else "; mining_code is disabled")
        else:  # busy or error: the sentence usually names the job already
            text = data["error"] if data["error"].startswith(data["job_id"]) else f"{data['job_id']}: {data['error']}"
        print(f"[{stamp}] {text}", flush=True)

    stop = threading.Event()
    signals = {"count": 0}

    def on_signal(signum, frame) -> None:
        signals["count"] += 1
        if signals["count"] > 1:  # a second Ctrl-C: do not wait for the running job (it rolls back)
            print("stopping now; the running job's unfinished transaction is rolled back", file=sys.stderr,
                  flush=True)
            service.stop(wait=False)
            os._exit(130)
        stop.set()

    service = SchedulerService(config, workspace, on_event=on_event)
    if not args.json:
        print(f"Scheduler for {workspace} (pid {os.getpid()}); Ctrl-C or SIGTERM stops it.", flush=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = service.start()
        if args.json:
            print(json.dumps({"event": "started", **{k: v for k, v in started.items() if k != "jobs"}}), flush=True)
        else:
            print("Watching: " + (", ".join(started["watching"]) or "nothing"), flush=True)
            for note in started["watch_notes"]:
                print(f"note: {note}", flush=True)
            if started["abandoned_runs_failed"]:
                print(f"note: marked {started['abandoned_runs_failed']} runs failed whose process had stopped",
                      flush=True)
        while not stop.wait(0.5):
            pass
        running = service.running_jobs()
        if running and not args.json:
            print(f"stopping: waiting for {', '.join(running)} to finish (Ctrl-C again to stop at once)",
                  flush=True)
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps({"event": "stopped"}) if args.json else "Scheduler stopped.", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    config, workspace = config_and_workspace(args)
    if args.action == "start":
        return _start(config, workspace, args)
    if args.action == "status":
        status = scheduler_status(config, workspace)
        command = f"python -m engine scheduler start --config {args.config}" + (
            f" --workspace {args.workspace}" if args.workspace else "")
        _print(status, args.json, format_status(status, command))
        return 0
    if args.action == "list":
        jobs, runs = list_jobs(config, workspace), job_history(workspace, limit=args.limit)
        _print({"jobs": jobs, "runs": runs}, args.json,
               f"Jobs in {workspace}:\n{format_jobs(jobs)}\n\nRecent runs:\n{format_history(runs)}")
        return 0
    if args.action == "log":
        if args.run_id is None:
            print("error: `scheduler log` needs --run N (the run ids are in `scheduler list`).", file=sys.stderr)
            return 2
        text = job_log(workspace, args.run_id)
        print(text.rstrip("\n") if text else f"Run {args.run_id} has no log lines.")
        return 0
    if not args.job:
        print(f"error: `scheduler {args.action}` needs --job ID, one of {', '.join(JOB_IDS)}.", file=sys.stderr)
        return 2
    if args.action == "configure":
        if args.reset:
            job = reset_job(config, workspace, args.job)
        else:
            job = configure_job(config, workspace, args.job, enabled=args.enabled,
                                interval_minutes=args.interval_minutes)
        _print(job, args.json, f"{format_jobs([job])}\n(a running scheduler applies this within a few seconds)")
        return 0
    result = run_job(config, workspace, args.job, trigger="manual")
    if args.json or result["status"] == "ok":
        _print(result, args.json, f"{format_run(result)}\nlog: {result['log_path']}")
    if result["status"] != "ok":
        print(f"error: {args.job} failed (run {result['run_id']}): {result['error']} Its log: {result['log_path']}",
              file=sys.stderr)
        return 1
    return 0
