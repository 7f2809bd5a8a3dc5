"""Training: start a LoRA run with mlx-lm, watch its loss live, browse past runs, deploy and roll back versions."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from engine.errors import StudioError
from engine.settings import active_workspace
from engine.store import Workspace
from engine.training import deploy as versions
from engine.training.launcher import PARAMETER_HELP, PRESETS, plan_run, resolve_config, start_run
from engine.training.models import DEFAULT_BASE_MODEL, default_model_ready
from engine.training.runs import get_run, list_data_folders, list_runs, run_metrics, stop_run
from views.access import action_button
from views.ui import code_span, escape_markdown

st.title("Training")
try:
    ws = Workspace.open(active_workspace())
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.caption(f"Workspace: {code_span(ws.root)} · LoRA with mlx-lm in a separate process; runs are kept in `runs/`.")

OTHER = "Another folder…"
PRESET_HELP = {
    "default": "The seed's train_model.py: 100 iterations, batch 1, learning rate 1e-5, 8 layers.",
    "8gb": "For 8 GB machines: batch 1 with 4 accumulation steps, max 512 tokens, gradient checkpointing, rank 4.",
    "quick": "A short try-out: 20 iterations, batch 2, learning rate 1e-4, a loss report every 2 steps.",
}


def loss_chart(rows: list[dict]) -> alt.Chart:
    """Train and validation loss against iteration, one point per report (svg, so each point is an element)."""
    frame = pd.DataFrame(rows, columns=["kind", "iteration", "loss"])
    frame["series"] = frame["kind"].map({"train": "train loss", "val": "validation loss"})
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("iteration:Q", title="iteration"),
            y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=["series", "iteration", alt.Tooltip("loss:Q", format=".4f")],
        )
        .properties(height=280, usermeta={"embedOptions": {"renderer": "svg"}})
    )


def report_counts(rows: list[dict]) -> str:
    train = sum(1 for row in rows if row["kind"] == "train")
    val = len(rows) - train
    return f"Loss reports: {train} train, {val} validation"


def show_run(run_id: str, key: str) -> None:
    run = get_run(ws, run_id)
    rows = run_metrics(ws, run_id)
    left, middle, right, last = st.columns(4)
    left.metric("Status", run.status)
    middle.metric("Iterations", f"{run.iterations_done} / {run.iters}")
    right.metric("Tokens/s", f"{run.tokens_per_second:,.0f}" if run.tokens_per_second else "–")
    last.metric("Validation loss", f"{run.final_val_loss:.3f}" if run.final_val_loss is not None else "–")
    if run.active:
        st.progress(min(1.0, run.iterations_done / max(1, run.iters)))
    if rows:
        st.altair_chart(loss_chart(rows), width="stretch", key=f"chart-{key}")
    st.caption(f"{escape_markdown(report_counts(rows))} · run {code_span(run.id)} · model {code_span(run.base_model)}"
               f" · data {code_span(run.data_dir)}" + (f" · OpenBLAS {code_span(run.blas)}" if run.blas else ""))
    if run.error:
        (st.warning if run.status == "stopped" else st.error)(escape_markdown(run.error))
    if run.log_tail and run.status in ("failed", "stopped"):
        st.code(run.log_tail, language=None)
    evaluation = run.evaluation
    if run.status == "completed" and evaluation.get("adapter"):
        table = [
            {"split": split, "adapter loss": losses["loss"], "adapter perplexity": losses["perplexity"],
             "base loss": evaluation["base"][split]["loss"], "base perplexity": evaluation["base"][split]["perplexity"]}
            for split, losses in evaluation["adapter"].items()
        ]
        three_decimals = {name: st.column_config.NumberColumn(format="%.3f") for name in table[0] if name != "split"}
        st.dataframe(pd.DataFrame(table), hide_index=True, column_config=three_decimals)
        generation = evaluation.get("generation") or {}
        rate = generation.get("repetition_rate")
        checks = "passed" if evaluation.get("passed") else "failed: " + " ".join(
            evaluation["sanity"]["problems"] + generation.get("problems", []))
        st.caption(escape_markdown(f"Checks {checks} · repetition rate {'–' if rate is None else f'{rate:.0%}'} · "
                                   f"{sum(item['bytes'] for item in run.adapter_files):,} bytes of adapter files"))


# -- new run -------------------------------------------------------------------------------------------------------
st.subheader("New run")
folders = list_data_folders(ws)
labels = {str(folder.relative_to(ws.root)): folder for folder in folders}
if not folders:
    st.info(f"No MLX data folder in {code_span(ws.path('datasets'))} yet: export a dataset on the Validation page, "
            f"or type the path of a folder holding train.jsonl and valid.jsonl.")
choice = st.selectbox("Dataset", [*labels, OTHER], help="An MLX data folder: train.jsonl, valid.jsonl, test.jsonl.")
data_dir = str(labels[choice]) if choice in labels else st.text_input("Data folder", key="data_folder")
model = st.text_input(
    "Base model", key="base_model", placeholder=f"{DEFAULT_BASE_MODEL} (offline default)",
    help="Empty for the offline default SmolLM2-135M-Instruct, a hub id (owner/name) or a local model folder."
    + ("" if default_model_ready() else " The default is converted once on first use (about half a minute)."),
)
preset = st.selectbox("Preset", list(PRESETS), format_func=lambda name: f"{name}: {PRESET_HELP[name]}")
defaults = resolve_config(preset)
with st.expander("Parameters", expanded=True):
    columns = st.columns(4)
    values = {}
    for index, key in enumerate(("iters", "batch_size", "num_layers", "max_seq_length", "lora_rank",
                                 "grad_accumulation_steps", "steps_per_report", "steps_per_eval")):
        values[key] = columns[index % 4].number_input(key.replace("_", " "), min_value=-1 if key == "num_layers"
                                                      else 1, value=defaults[key], step=1,
                                                      help=PARAMETER_HELP[key], key=f"{preset}-{key}")
    values["learning_rate"] = columns[0].number_input("learning rate", min_value=1e-7, max_value=1.0,
                                                      value=defaults["learning_rate"], format="%.1e",
                                                      help=PARAMETER_HELP["learning_rate"], key=f"{preset}-lr")
    values["grad_checkpoint"] = columns[1].checkbox("gradient checkpointing", value=defaults["grad_checkpoint"],
                                                    help=PARAMETER_HELP["grad_checkpoint"], key=f"{preset}-gc")
    values["mask_prompt"] = columns[2].checkbox("mask prompt", value=defaults["mask_prompt"],
                                                help=PARAMETER_HELP["mask_prompt"], key=f"{preset}-mask")
    force = columns[3].checkbox(f"train on fewer than {defaults['min_samples']} samples",
                                help="Small datasets overfit; training on them is allowed when forced.")
if action_button("Start training", type="primary", icon=":material/play_arrow:"):
    try:
        plan = plan_run(data_dir, model or None, preset, overrides=values, force=force)
        st.session_state["live_run"] = start_run(ws, plan)
        for warning in plan.warnings:
            st.warning(escape_markdown(warning))
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))

# -- the live run --------------------------------------------------------------------------------------------------
runs = list_runs(ws)
live_id = st.session_state.get("live_run") or next((run.id for run in runs if run.active), None)
live_is_active = any(run.id == live_id and run.active for run in runs)


@st.fragment(run_every=2.0 if live_is_active else None)
def live_run() -> None:
    if not live_id:
        return
    with st.container(key="live-run"):
        st.subheader("Live run")
        run = get_run(ws, live_id)
        if run.active and action_button("Stop", icon=":material/stop:", key="stop-live"):
            try:
                stop_run(ws, live_id)
            except StudioError as exc:
                st.error(escape_markdown(str(exc)))
        show_run(live_id, "live")
    if live_is_active and not get_run(ws, live_id).active:
        st.rerun()  # the run ended: refresh the history and versions below, and stop polling


live_run()

# -- history -------------------------------------------------------------------------------------------------------
st.subheader("Runs")
if not runs:
    st.info("No runs yet: choose a dataset and press Start training.")
else:
    history = pd.DataFrame([
        {"run": run.id, "status": run.status, "iterations": f"{run.iterations_done}/{run.iters}",
         "train loss": run.final_train_loss, "validation loss": run.final_val_loss,
         "tokens/s": run.tokens_per_second, "model": run.base_model, "samples": run.train_samples}
        for run in runs
    ])
    st.dataframe(history, hide_index=True, column_config={
        "train loss": st.column_config.NumberColumn(format="%.3f"),
        "validation loss": st.column_config.NumberColumn(format="%.3f"),
        "tokens/s": st.column_config.NumberColumn(format="%.0f"),
    })
    picked = st.selectbox("Show run", [run.id for run in runs], key="history_run")
    show_run(picked, "history")

# -- versions ------------------------------------------------------------------------------------------------------
st.subheader("Versions")
current = versions.current_version(ws)
state = versions.deployment_state(ws)
st.caption(f"Served now: {escape_markdown(current.name) if current else 'the base model alone'}"
           + (f" · canary v{state['canary_version']} answers {state['canary_share']:.0%} of requests"
              if state["canary_version"] else ""))
records = versions.list_versions(ws)
if records:
    st.dataframe(pd.DataFrame([
        {"version": record.name, "status": record.status, "run": record.run_id, "sha256": record.checksum[:16],
         "deployed": record.deployed_at, "comparison": (record.metrics.get("comparison") or {}).get("summary")}
        for record in records
    ]), hide_index=True)
completed = [run.id for run in runs if run.status == "completed"]
if "versions_message" in st.session_state:
    kind, text = st.session_state.pop("versions_message")
    (st.success if kind == "success" else st.info)(escape_markdown(text))
if completed:
    left, middle, right = st.columns(3)
    candidate = left.selectbox("Run to deploy", completed, key="deploy_run")
    margin = middle.number_input("Rollback margin", 0.0, 1.0, versions.DEFAULT_MARGIN, 0.01, key="margin",
                                 help="Roll back automatically when held-out loss is worse than the served model's "
                                      "by more than this share.")
    share = right.slider("Canary share (%)", 1, 99, 10, key="canary_share")
    force_deploy = st.checkbox("Deploy even if the generation check failed", key="force_deploy")
    buttons = st.columns(5)
    message = None
    comparing = "Checking the adapter and comparing it with the served model on held-out data…"
    try:
        if action_button("Deploy", where=buttons[0], icon=":material/rocket_launch:"):
            with st.spinner(comparing):
                message = ("success", versions.deploy(ws, candidate, force=force_deploy, margin=margin).message)
        if action_button("Dry run", where=buttons[1]):
            with st.spinner(comparing):
                checked = versions.deploy(ws, candidate, force=force_deploy, margin=margin, dry_run=True)
            message = ("info", checked.message)
        if action_button("Start canary", where=buttons[2]):
            with st.spinner(comparing):
                started = versions.canary(ws, candidate, share / 100, force=force_deploy, margin=margin)
            message = ("success", started.message)
        if state["canary_version"] and action_button("Promote canary", where=buttons[3]):
            message = ("success", f"Promoted {versions.promote(ws).name}: it is the current version now.")
        if current and action_button("Roll back", where=buttons[4], icon=":material/undo:"):
            restored = versions.rollback(ws)
            message = ("success", f"Rolled back: {restored.name if restored else 'the base model'} is served now.")
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    if message:
        st.session_state["versions_message"] = message
        st.rerun()
elif not records:
    st.info("Deploy needs a completed run: start one above.")
