"""Pipeline: watch continuous collection. Totals and charts of the collected examples, the health of every input
and example source, the scheduled jobs with their next run and last result, a Run now button each, the scheduler's
state and the job history. The numbers come from engine.ops.stats and engine.ops.scheduler; this page only shows
them and runs what the user asks for."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from engine.config import COLLECT_SOURCES
from engine.errors import StudioError
from engine.ops import background, scheduler, stats
from engine.records import TIERS
from engine.text import byte_size
from views.access import action_button, action_submit, can, refusal
from views.ui import checked_sources, code_span, escape_markdown, require_config

SOURCE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
TIER_COLORS = ["#d4a017", "#9e9e9e", "#b26b32", "#cfd8dc"]
FORMAT_COLORS = ["#4c78a8", "#72b7b2", "#54a24b", "#eeca3b"]
DAY_CHOICES = [7, 14, 30, 90]

st.title("Pipeline")
config_path, workspace, config = require_config()


# -- formatting ----------------------------------------------------------------------------------------------------
def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def span(seconds: float) -> str:
    """A duration in the largest units that keep it readable: 45 s, 12 min, 5 h 59 min, 3 days."""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{minutes / 1440:.0f} days"


def relative(stamp: str | None) -> str:
    """'3 min ago' or 'in 5 h 59 min' for an ISO time; '–' for none."""
    moment = parse_time(stamp)
    if moment is None:
        return "–"
    seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    if abs(seconds) < 5:
        return "just now"
    return f"in {span(seconds)}" if seconds > 0 else f"{span(seconds)} ago"


def clock(stamp: str | None) -> str:
    moment = parse_time(stamp)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def every(minutes: float) -> str:
    return f"every {span(minutes * 60)}"


def widths(**pixels: int) -> dict:
    """Column widths in pixels for st.dataframe, so the text that matters is not cut off."""
    return {name: st.column_config.Column(width=width) for name, width in pixels.items()}


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def counts_text(counts: dict) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in counts.items() if value)


def took(run: dict) -> str:
    return span(run["seconds"]) if run.get("seconds") is not None else "–"


def run_outcome(run: dict | None) -> str:
    """A job's last run in one line: status, when, and what it did (the scheduler's summary) or its error."""
    if not run:
        return "never run"
    if run["status"] == "running":
        return f"**running** since {relative(run['started_at'])} ({escape_markdown(run['trigger'])})"
    return f"**{escape_markdown(run['status'])}** {relative(run.get('finished_at') or run['started_at'])}" + (
        f" · {escape_markdown(run['summary'])}" if run.get("summary") else "")


# -- cached reads ----------------------------------------------------------------------------------------------------
def short_path(location: str) -> str:
    """A path inside the config's folder relative to it (as the config writes it), any other path as it is."""
    try:
        return str(Path(location).relative_to(config.base_dir))
    except ValueError:
        return location


def start_command() -> str:
    command = f"python -m engine scheduler start --config {config_path}"
    if config.workspace is None or Path(config.workspace).resolve() != Path(workspace).resolve():
        command += f" --workspace {workspace}"
    return command


# -- the page --------------------------------------------------------------------------------------------------------
try:
    state = scheduler.scheduler_status(config, workspace)
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

top = st.container(horizontal=True, vertical_alignment="center")
if state["running"]:
    top.badge(f"Scheduler running · pid {state['pid']}", icon=":material/schedule:", color="green")
else:
    top.badge("Scheduler not running", icon=":material/schedule:", color="gray")
top.button("Refresh", icon=":material/refresh:", key="refresh", type="tertiary")

# The overview is drawn after the jobs section so that a job run from this page is already in its numbers.
overview = st.container()

st.subheader("Jobs")
if state["running"]:
    watching = state.get("watching") or []
    st.success(f"The scheduler is running (pid {state['pid']}, started {relative(state['started_at'])}, last "
               f"heartbeat {relative(state['heartbeat_at'])}): it runs each enabled job on its interval"
               + (f", and mining_code when {', '.join(code_span(path) for path in watching)} change." if watching
                  else "."),
               icon=":material/schedule:")
    if action_button("Stop scheduler", icon=":material/stop_circle:", key="stop_scheduler"):
        with st.spinner("Stopping the scheduler (a job in progress finishes first) ..."):
            try:
                background.stop_scheduler_process(config, workspace)
            except StudioError as exc:
                st.error(escape_markdown(str(exc)))
                st.stop()
        st.rerun()
else:
    last_seen = f" (last seen {relative(state['last_heartbeat_at'])})" if state.get("last_heartbeat_at") else ""
    st.info(f"The scheduler is not running{last_seen}, so jobs run only when you press **Run now**. To run them on "
            "their intervals, and mine whenever the screenpipe database or a repository changes, start it in a "
            "terminal and leave it running, or start it here (it keeps running when you close the page):",
            icon=":material/schedule:")
    st.code(start_command(), language="bash")
    if action_button("Start scheduler", icon=":material/play_circle:", key="start_scheduler", type="primary"):
        with st.spinner("Starting the scheduler ..."):
            try:
                background.start_scheduler_process(config_path, workspace)
            except StudioError as exc:
                st.error(escape_markdown(str(exc)))
                st.stop()
        st.rerun()


def save_schedule(job_id: str) -> None:
    """Form callback: store the job's schedule in the workspace (the config file stays as the user wrote it)."""
    if not can("change"):
        st.session_state["schedule-note"] = (job_id, "error", refusal("change"))
        return
    try:
        job = scheduler.configure_job(config, workspace, job_id, enabled=st.session_state[f"enabled-{job_id}"],
                                      interval_minutes=st.session_state[f"interval-{job_id}"])
        note = ("success", f"Saved: {job_id} is {'enabled' if job['enabled'] else 'disabled'}, "
                           f"{every(job['interval_minutes'])}. Kept in the workspace (the config file is unchanged)"
                           + ("; the running scheduler picks it up within seconds." if state["running"] else "."))
    except StudioError as exc:
        note = ("error", escape_markdown(str(exc)))
    st.session_state["schedule-note"] = (job_id, *note)


def schedule_text(job: dict) -> tuple[str, str]:
    """The job's schedule, and when it runs next (or why it does not)."""
    if not job["enabled"]:
        return f"**disabled** (interval {span(job['interval_minutes'] * 60)})", "runs only when you press Run now"
    text = every(job["interval_minutes"]) + (" (workspace setting)" if job.get("override") else "")
    if job.get("retry_at"):
        return text, f"retry {relative(job['retry_at'])}"
    if job.get("next_run_at"):
        return text, f"next run {relative(job['next_run_at'])}"
    return text, "next run: being planned" if state["running"] else "next run: – (scheduler not running)"


def show_job(job: dict) -> None:
    """One bordered row: what the job does, its schedule (editable), its last result, and Run now. A run started
    here happens in this script run, under a spinner, and its result is shown below the row."""
    job_id = job["job_id"]
    with st.container(border=True, key=f"job-{job_id}"):
        about, schedule, last, action = st.columns([3, 2, 3.6, 1.6], vertical_alignment="center")
        clicked = action_button("Run now", where=action, key=f"run-{job_id}", icon=":material/play_arrow:",
                                width="stretch", disabled=job.get("running", False),
                                help="Already running." if job.get("running") else f"Run {job_id} now and wait.")
        outcome = None
        if clicked:
            with st.spinner(f"Running {job_id} ...", show_time=True):
                try:
                    outcome = scheduler.run_job(config, workspace, job_id, trigger="manual")
                except StudioError as exc:
                    outcome = exc
            job = next(item for item in scheduler.list_jobs(config, workspace) if item["job_id"] == job_id)
        about.markdown(f"**{escape_markdown(job['title'])}** · {code_span(job_id)}")
        about.caption(escape_markdown(job["description"]))
        planned, next_run = schedule_text(job)
        schedule.markdown(planned)
        schedule.caption(next_run)
        with schedule.popover("Schedule", icon=":material/edit_calendar:"):
            with st.form(f"schedule-{job_id}", border=False):
                st.toggle("Enabled", value=job["enabled"], key=f"enabled-{job_id}")
                st.number_input("Interval (minutes)", min_value=0.5, value=float(job["interval_minutes"]), step=30.0,
                                format="%g", key=f"interval-{job_id}")
                action_submit("Save", key=f"save-{job_id}", on_click=save_schedule, args=(job_id,))
        last_run = job.get("last_run")
        last.markdown(f"Last run: {run_outcome(last_run)}")
        if last_run:
            last.caption(escape_markdown(f"run {last_run['run_id']} · {clock(last_run['started_at'])} · "
                                         f"{last_run['trigger']} · took {took(last_run)}"))
        note = st.session_state.get("schedule-note")
        if note and note[0] == job_id:
            getattr(st, note[1])(note[2])
            del st.session_state["schedule-note"]
        if isinstance(outcome, StudioError):
            st.error(escape_markdown(str(outcome)))
        elif outcome is not None and outcome["status"] == "ok":
            st.success(escape_markdown(f"{job_id} finished in {took(outcome)}: {outcome['summary'] or 'done'}."),
                       icon=":material/check_circle:")
        elif outcome is not None:
            st.error(escape_markdown(f"{job_id} failed after {took(outcome)}: {outcome['error']} The log of run "
                                     f"{outcome['run_id']} below has the details."))


for job in state["jobs"]:
    show_job(job)

st.subheader("Recent runs")
history = scheduler.job_history(workspace, limit=20)
with st.container(key="recent-runs"):
    if not history:
        st.caption("No job has run in this workspace yet.")
    else:
        st.dataframe(
            pd.DataFrame([
                {"run": run["run_id"], "job": run["job_id"], "trigger": run["trigger"], "status": run["status"],
                 "started": clock(run["started_at"]), "took": took(run), "attempt": run["attempt"],
                 "result": run["summary"]}
                for run in history
            ]),
            hide_index=True, width="stretch", key="history",
            column_config=widths(run=50, job=120, trigger=80, status=60, started=150, took=60, attempt=60, result=560),
        )
        with st.expander("Log of a run", icon=":material/article:"):
            labels = {run["run_id"]: f"run {run['run_id']} · {run['job_id']} · {run['status']} · "
                                     f"{clock(run['started_at'])}" for run in history}
            run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="log-run")
            st.code(scheduler.job_log(workspace, run_id) or "(this run wrote no log)", language=None)


@st.fragment(run_every=5 if state["running"] or any(job["running"] for job in state["jobs"]) else None)
def follow_the_scheduler(shown: list) -> None:
    """While the scheduler (or a job) runs elsewhere, look for new or finished runs every few seconds and redraw the
    page when there are some; nothing is polled when nothing runs."""
    latest = [(run["run_id"], run["status"]) for run in scheduler.job_history(workspace, limit=5)]
    if latest != shown:
        st.rerun()


follow_the_scheduler([(run["run_id"], run["status"]) for run in history[:5]])


# -- overview: totals, charts, source health -------------------------------------------------------------------------
with overview:
    try:
        summary = stats.summary(workspace)
        readiness = stats.training_readiness(config, workspace)
        example_sources = stats.sources(workspace)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()
    overall = summary["overall"]
    total = overall["total_examples"]
    columns = st.columns(5)
    columns[0].metric("Examples", f"{total:,}", help=f"Collected examples, not counting the "
                      f"{overall['duplicates']:,} the dedup job marked as duplicates.")
    columns[1].metric("Tokens", f"{overall['total_tokens']:,}",
                      help=f"{overall['avg_token_length']:,.1f} tokens per example on average.")
    columns[2].metric("Storage", byte_size(overall["storage_bytes"]),
                      help=f"{overall['storage_bytes']:,} bytes of records.")
    columns[3].metric("Gold + silver", f"{summary['summary']['top_quality_percentage']:.1f}%",
                      help="Share of examples in the gold and silver tiers (aim for more than half).")
    held = (f" {readiness['held_for_review']:,} more wait for review of possible secrets on the Validation page."
            if readiness["held_for_review"] else "")
    columns[4].metric("Ready to train", "yes" if readiness["ready_to_train"] else "not yet",
                      delta=f"{readiness['total_samples']:,} of {readiness['min_for_training']:,} examples",
                      delta_color="normal" if readiness["ready_to_train"] else "off", delta_arrow="off",
                      help=f"Examples export_training would write (tier {readiness['export_min_tier']} or better, "
                           f"no duplicates) against collect.min_examples_for_training.{held}")

    if total == 0:
        st.info("Nothing collected yet: press **Run now** on **mining_code** below (it extracts from the sources "
                f"and collects examples), or run {code_span(f'python -m engine collect --config {config_path}')} in a "
                "terminal.",
                icon=":material/inbox:")
    else:
        heading = st.container(horizontal=True, vertical_alignment="center", gap="medium")
        chart_title = heading.empty()
        days = heading.segmented_control("Days", DAY_CHOICES, default=30, key="days", label_visibility="collapsed",
                                         format_func=lambda count: f"{count} days") or 30
        daily = stats.daily(workspace, days=days)
        seen = sorted({name for day in daily for name in day["by_source"]} | set(overall["by_source"]))
        domain = [name for name in COLLECT_SOURCES if name in seen] + [n for n in seen if n not in COLLECT_SOURCES]
        source_scale = alt.Scale(domain=domain, range=SOURCE_COLORS[:len(domain)])
        per_day = pd.DataFrame([{"date": day["date"], "source": name, "examples": day["by_source"].get(name, 0)}
                                for day in daily for name in domain])
        chart_title.markdown(f"**Examples collected per day**: {sum(day['total_examples'] for day in daily):,} in "
                             f"the last {days} days")
        st.altair_chart(
            alt.Chart(per_day).mark_bar().encode(
                x=alt.X("date:O", title=None, axis=alt.Axis(labelExpr="utcFormat(toDate(datum.value), '%b %d')",
                                                             labelAngle=0, labelOverlap="greedy")),
                y=alt.Y("sum(examples):Q", title="examples"),
                color=alt.Color("source:N", scale=source_scale, legend=alt.Legend(orient="top", title=None)),
                tooltip=[alt.Tooltip("date:N", title="day"), "source:N", "examples:Q"],
            ).properties(height=220),
            width="stretch", key="chart-daily",
        )
        left, middle, right = st.columns(3)

        def share_chart(counts: dict, order: list[str], scale: alt.Scale, title: str, key: str, where) -> None:
            frame = pd.DataFrame([{"name": name, "examples": counts.get(name, 0)} for name in order])
            where.markdown(f"**{title}**")
            where.altair_chart(
                alt.Chart(frame).mark_bar().encode(
                    y=alt.Y("name:N", sort=order, title=None),
                    x=alt.X("examples:Q", title="examples"),
                    color=alt.Color("name:N", scale=scale, legend=None),
                    tooltip=["name:N", "examples:Q"],
                ).properties(height=170),
                width="stretch", key=key,
            )

        share_chart(overall["by_source"], domain, source_scale, "By source", "chart-source", left)
        share_chart(overall["by_quality"], list(TIERS), alt.Scale(domain=list(TIERS), range=TIER_COLORS),
                    "By tier", "chart-tier", middle)
        formats = sorted(overall["by_format"])
        share_chart(overall["by_format"], formats, alt.Scale(domain=formats, range=FORMAT_COLORS[:len(formats)]),
                    "By format", "chart-format", right)

    st.subheader("Source health")
    st.markdown("**Inputs**: what collection reads (checked without reading everything)")
    inputs = checked_sources(config)
    st.dataframe(
        pd.DataFrame([
            {"source": status.kind, "location": ", ".join(map(short_path, status.location.split(", "))),
             "ok": status.ok, "check": status.message,
             "holds": ", ".join(f"{key} {value:,}" for key, value in status.details.items() if is_count(value)),
             "latest": next((value for key, value in status.details.items() if key.startswith("last ") and value), "")}
            for status in inputs
        ]),
        hide_index=True, width="stretch", key="inputs",
        column_config=widths(source=100, location=150, ok=40, check=270, holds=210, latest=150),
    )
    for status in inputs:
        if not status.ok:
            st.error(escape_markdown(f"{status.kind}: {status.message}"))
    st.markdown("**Examples**: what collection has produced, per source")
    st.dataframe(
        pd.DataFrame([
            {"source": item["source"], "examples": item["total_examples"],
             "health": item["health_score"] if item["total_examples"] else None,
             "last 24 h": item["examples_24h"], "tiers": counts_text(item["quality_distribution"]) or "–",
             "last updated": clock(item.get("last_updated"))}
            for item in example_sources
        ]),
        hide_index=True, width="stretch", key="example-sources",
        column_config={"health": st.column_config.ProgressColumn(
            min_value=0.0, max_value=1.0, format="%.2f", color="auto",
            help="The mean quality score of its examples (0 to 1); aim for every source above 0.6.")},
    )
