"""Training: preview a dataset, start a LoRA run with mlx-lm (one at a time, in its own process), watch it live,
compare runs' loss curves, export a fine-tuned model, and deploy or roll back versions."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from engine.chat.models import run_choice
from engine.errors import StudioError
from engine.processes import TaskBusy, start_task, task_status
from engine.settings import active_workspace
from engine.store import Workspace
from engine.text import plural
from engine.training import deploy as versions
from engine.training.launcher import (
    DEFAULT_PRESET,
    PARAMETER_HELP,
    PRESETS,
    active_training,
    plan_run,
    resolve_config,
    save_preset,
    saved_presets,
    start_run,
    task_run_id,
)
from engine.training.models import DEFAULT_BASE_MODEL, default_model_ready, resolve_base_model
from engine.training.preview import preview_data_folder
from engine.training.runs import get_run, list_data_folders, list_runs, run_metrics, stop_run
from views.access import action_button
from views.ui import background_task, code_span, escape_markdown, shared_model_cache, task_progress

st.title("Training")
try:
    ws = Workspace.open(active_workspace())
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.caption(f"Workspace: {code_span(ws.root)} · LoRA with mlx-lm in its own process, one run at a time; runs are kept "
           "in `runs/`.")

OTHER = "Another folder…"
PRESET_HELP = {
    "quick": "A short first run: 20 steps at learning rate 2e-4, a loss point every step (a few minutes on a CPU).",
    "full": "100 steps, batch 1, learning rate 1e-5, 8 layers: the classic mlx-lm LoRA settings.",
    "8gb": "For 8 GB machines: batch 1 with 4 accumulation steps, max 512 tokens, gradient checkpointing, rank 4.",
}
EDITABLE = ("iters", "batch_size", "num_layers", "max_seq_length", "lora_rank", "grad_accumulation_steps",
            "steps_per_report", "steps_per_eval")


def loss_chart(rows: list[dict], by_run: bool = False) -> alt.Chart:
    """Loss against iteration, one point per report (svg, so each point is an element). With `by_run`, one colour
    per run and dashed validation lines, so several runs overlay."""
    frame = pd.DataFrame(rows, columns=["run", "kind", "iteration", "loss"])
    frame["series"] = frame["kind"].map({"train": "train loss", "val": "validation loss"})
    color = alt.Color("run:N" if by_run else "series:N", title=None, legend=alt.Legend(orient="top"))
    encodings = {"color": color, "detail": "series:N"}
    if by_run:
        encodings["strokeDash"] = alt.StrokeDash("series:N", title=None, legend=alt.Legend(orient="top"))
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("iteration:Q", title="iteration"),
            y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
            tooltip=["run", "series", "iteration", alt.Tooltip("loss:Q", format=".4f")],
            **encodings,
        )
        .properties(height=280, usermeta={"embedOptions": {"renderer": "svg"}})
    )


def report_counts(rows: list[dict]) -> str:
    train = sum(1 for row in rows if row["kind"] == "train")
    return f"Loss reports: {train} train, {len(rows) - train} validation"


def show_run(run_id: str, key: str) -> None:
    run = get_run(ws, run_id)
    rows = [{**row, "run": run_id} for row in run_metrics(ws, run_id)]
    left, middle, right, last = st.columns(4)
    left.metric("Status", run.status_text)
    middle.metric("Iterations", f"{run.iterations_done} / {run.iters}")
    right.metric("Tokens/s", f"{run.tokens_per_second:,.0f}" if run.tokens_per_second else "–")
    last.metric("Validation loss", f"{run.final_val_loss:.3f}" if run.final_val_loss is not None else "–")
    if rows:
        st.altair_chart(loss_chart(rows), width="stretch", key=f"chart-{key}")
    st.caption(f"{escape_markdown(report_counts(rows))} · run {code_span(run.id)} · model {code_span(run.base_model)}"
               f" · data {code_span(run.data_dir)}" + (f" · OpenBLAS {code_span(run.blas)}" if run.blas else ""))
    if run.error:
        (st.warning if run.status == "stopped" else st.error)(escape_markdown(run.error))
    if run.log_tail and run.status in ("failed", "stopped"):
        st.code(run.log_tail, language=None)
    show_evaluation(run)


def show_evaluation(run) -> None:
    evaluation = run.evaluation
    if run.status != "completed" or not evaluation.get("adapter"):
        return
    base = evaluation.get("base") or {}
    table = [{"split": split, "adapter loss": losses["loss"], "adapter perplexity": losses["perplexity"],
              "base loss": (base.get(split) or {}).get("loss"), "base perplexity": (base.get(split) or {}).get(
                  "perplexity")} for split, losses in evaluation["adapter"].items()]
    three_decimals = {name: st.column_config.NumberColumn(format="%.3f") for name in table[0] if name != "split"}
    st.dataframe(pd.DataFrame(table), hide_index=True, column_config=three_decimals)
    generation = evaluation.get("generation") or {}
    rate = generation.get("repetition_rate")
    checks = "passed" if evaluation.get("passed") else "failed: " + " ".join(
        evaluation["sanity"]["problems"] + generation.get("problems", []))
    changed = evaluation.get("answers_changed")
    changed_text = (f" · the adapter answers {changed['changed']} of {plural(changed['prompts'], 'held-out prompt')} "
                    "differently from its base model") if changed else ""
    st.caption(f"Checks {checks} · repetition rate {'–' if rate is None else f'{rate:.0%}'} · "
               f"{sum(item['bytes'] for item in run.adapter_files):,} bytes of adapter files{changed_text}")
    samples = [sample for sample in generation.get("samples", []) if "base_output" in sample]
    if samples:
        with st.expander("Base and fine-tuned answers to a held-out prompt"):
            sample = samples[0]
            st.code(sample["prompt"], language=None, wrap_lines=True)
            left, right = st.columns(2)
            left.markdown("**base model**")
            left.code(sample["base_output"] or "(nothing)", language=None, wrap_lines=True)
            right.markdown("**fine-tuned**")
            right.code(sample["output"] or "(nothing)", language=None, wrap_lines=True)


def preview_panel(data_dir: str, model: str, max_seq_length: int) -> None:
    """The chosen folder before training: counts, format, token lengths against max_seq_length, first samples."""
    try:
        base = resolve_base_model(model or None)
        folder = base.path if base.kind != "default" or default_model_ready() else None
        preview = preview_data_folder(data_dir, folder, max_seq_length)
    except StudioError as exc:
        st.caption(escape_markdown(str(exc)))
        return
    counts = preview.counts
    line = (f"{plural(counts['train'], 'training sample')}, {counts['valid']:,} validation, {counts['test']:,} "
            f"test · format: {preview.data_format}")
    if preview.tokens:
        tokens = preview.tokens
        line += (f" · {tokens['mean']:,.0f} tokens on average, {tokens['max']:,} at most (the base model's tokenizer, "
                 "before the chat template)")
    elif base.kind == "default":
        line += f" · token lengths appear once {DEFAULT_BASE_MODEL} is converted (on the first run)"
    st.caption(line)
    for warning in preview.warnings:
        st.warning(escape_markdown(warning))
    with st.expander(f"The first {plural(len(preview.samples), 'training sample')}"):
        for sample in preview.samples:
            st.markdown(f"**train.jsonl line {sample['line']}**")
            for label, text in sample["parts"]:
                st.caption(label)
                st.code(text[:1500] + ("…" if len(text) > 1500 else ""), language=None, wrap_lines=True)


# -- new run -------------------------------------------------------------------------------------------------------
running = active_training(ws)
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
    + ("" if default_model_ready() else " The default is converted once on first use (a few seconds)."),
)
try:
    saved = saved_presets(ws)
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    saved = {}
preset_names = [*PRESETS, *saved]
if pending := st.session_state.pop("select_preset", None):
    st.session_state["preset"] = pending
preset = st.selectbox("Preset", preset_names, index=preset_names.index(DEFAULT_PRESET), key="preset")
st.caption(PRESET_HELP.get(preset) or "Saved in this workspace: " + ", ".join(
    f"{key.replace('_', ' ')} {value:g}" if isinstance(value, float) else f"{key.replace('_', ' ')} {value}"
    for key, value in saved[preset].items()))
defaults = resolve_config(preset, saved=saved)
with st.expander("Parameters", expanded=False):
    columns = st.columns(4)
    values = {}
    for index, key in enumerate(EDITABLE):
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
    name_column, save_column = st.columns([3, 1], vertical_alignment="bottom")
    preset_name = name_column.text_input("Save these parameters as a preset", key="preset_name",
                                         placeholder="a name, e.g. my longer run")
    if action_button("Save preset", where=save_column, icon=":material/save:", key="save_preset"):
        try:
            save_preset(ws, preset_name, values)
            st.session_state["training_notice"] = f"Saved the preset {preset_name.strip()!r}."
            st.session_state["select_preset"] = preset_name.strip()  # chosen before the selectbox is drawn again
            st.rerun()
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
if data_dir.strip():
    preview_panel(data_dir, model, int(values["max_seq_length"]))
start_help = (f"Run {task_run_id(running)} is going: one run at a time, so this waits until it ends or is stopped."
              if running else "Starts the run in its own process; you can leave the page, it goes on.")
if action_button("Start training", type="primary", icon=":material/play_arrow:", disabled=running is not None,
             help=start_help, key="start_training"):
    try:
        plan = plan_run(data_dir, model or None, preset, overrides=values, force=force, saved=saved)
        start_run(ws, plan)
        st.session_state["training_notice"] = " ".join(plan.warnings)
        st.rerun()  # draw the page again with Start disabled and the live panel polling
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
if notice := st.session_state.pop("training_notice", None):
    st.info(escape_markdown(notice))


# -- the live run and every run: one panel, so a run's status reads the same everywhere ----------------------------
@st.fragment(run_every=1.0 if running else None)
def runs_panel() -> None:
    live = active_training(ws)
    runs = list_runs(ws)
    if live is not None:
        run_id = task_run_id(live)
        with st.container(key="live-run"):
            st.subheader("Live run")
            task_progress(live, f"Run {run_id}")
            if action_button("Stop", icon=":material/stop:", key="stop-live"):
                try:
                    stop_run(ws, run_id)
                except StudioError as exc:
                    st.error(escape_markdown(str(exc)))
            show_run(run_id, "live")
    elif running is not None:
        st.rerun()  # the run ended while this page watched it: enable Start and refresh the versions below
    st.subheader("Runs")
    if not runs:
        st.info("No runs yet: choose a dataset and press Start training.")
        return
    st.dataframe(pd.DataFrame([
        {"run": run.id, "status": run.status_text, "iterations": f"{run.iterations_done}/{run.iters}",
         "train loss": run.final_train_loss, "validation loss": run.final_val_loss, "tokens/s": run.tokens_per_second,
         "preset": run.preset, "model": run.base_model, "samples": run.train_samples}
        for run in runs
    ]), hide_index=True, key="runs_table", column_config={
        "train loss": st.column_config.NumberColumn(format="%.3f"),
        "validation loss": st.column_config.NumberColumn(format="%.3f"),
        "tokens/s": st.column_config.NumberColumn(format="%.0f"),
    })


runs_panel()
runs = list_runs(ws)
newest = next((run for run in runs if run.usable), None)
if newest is not None:  # the next page is Compare: have its models loaded by then (in the background)
    try:
        tuned = run_choice(ws, newest.id)
        shared_model_cache().warm([tuned.base(), tuned])
    except StudioError:
        pass  # Compare says what is wrong with it when asked
if runs:
    with_metrics = [run.id for run in runs if run.iterations_done]
    compared = st.multiselect("Loss curves to compare", with_metrics, default=with_metrics[:3], key="compared_runs",
                              help="Several runs on one chart: colour per run, dashed for validation loss.")
    if compared:
        rows = [{**row, "run": run_id} for run_id in compared for row in run_metrics(ws, run_id)]
        st.altair_chart(loss_chart(rows, by_run=True), width="stretch", key="chart-compare")
    picked = st.selectbox("Show run", [run.id for run in runs], key="history_run")
    show_run(picked, "history")

    # -- export ----------------------------------------------------------------------------------------------------
    st.subheader("Export")
    usable = [run.id for run in runs if run.usable]
    if not usable:
        st.info("Export needs a run whose adapter is saved: train one above.")
    else:
        exporting = task_status(ws.root, "fuse")
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        to_export = left.selectbox("Run to export", usable, key="export_run",
                                   help="Its adapter fused into the base model: an MLX folder for mlx-lm and "
                                        "transformers, and a GGUF file with a Modelfile for llama.cpp and Ollama "
                                        "where the architecture allows.")
        if action_button("Export model", where=right, icon=":material/output:", key="export_model",
                         disabled=bool(exporting and exporting.running)):
            try:
                start_task(ws.root, "fuse", ["fuse", to_export, "--workspace", str(ws.root.resolve())])
                st.rerun()
            except (TaskBusy, StudioError) as exc:
                st.error(escape_markdown(str(exc)))

        def exported(result: dict) -> None:
            gguf = (f"GGUF file {code_span(result['gguf_file'])} (with a Modelfile for `ollama create`)"
                    if result["gguf_file"] else f"no GGUF file: {escape_markdown(result['gguf_skipped'])}")
            st.success(f"Exported to {code_span(result['folder'])}: MLX folder {code_span(result['mlx_folder'])}; "
                       f"{gguf}", icon=":material/done:")

        background_task(ws.root, "fuse", "Exporting", exported)

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
    deploying = task_status(ws.root, "deploy")
    busy = bool(deploying and deploying.running)
    left, middle, right = st.columns(3)
    candidate = left.selectbox("Run to deploy", completed, key="deploy_run")
    margin = middle.number_input("Rollback margin", 0.0, 1.0, versions.DEFAULT_MARGIN, 0.01, key="margin",
                                 help="Roll back automatically when held-out loss is worse than the served model's "
                                      "by more than this share.")
    share = right.slider("Canary share (%)", 1, 99, 10, key="canary_share")
    force_deploy = st.checkbox("Deploy even if the generation check failed", key="force_deploy")
    buttons = st.columns(5)
    workspace_flag = ["--workspace", str(ws.root.resolve())]
    checked = [candidate, "--margin", f"{margin:g}", *(["--force"] if force_deploy else [])]
    started = None
    message = None
    try:
        # Deploying compares the candidate with the served model on held-out data: that loads models, so it runs
        # in the background like every long job.
        if action_button("Deploy", where=buttons[0], icon=":material/rocket_launch:", disabled=busy):
            started = ["deploy", *workspace_flag, "deploy", *checked]
        if action_button("Dry run", where=buttons[1], disabled=busy):
            started = ["deploy", *workspace_flag, "deploy", *checked, "--dry-run"]
        if action_button("Start canary", where=buttons[2], disabled=busy):
            started = ["deploy", *workspace_flag, "canary", *checked, "--traffic", f"{share:g}"]
        if state["canary_version"] and action_button("Promote canary", where=buttons[3], disabled=busy):
            message = ("success", f"Promoted {versions.promote(ws).name}: it is the current version now.")
        if current and action_button("Roll back", where=buttons[4], icon=":material/undo:", disabled=busy):
            restored = versions.rollback(ws)
            message = ("success", f"Rolled back: {restored.name if restored else 'the base model'} is served now.")
        if started:
            start_task(ws.root, "deploy", started)
            st.rerun()
    except (TaskBusy, StudioError) as exc:
        st.error(escape_markdown(str(exc)))
    if message:
        st.session_state["versions_message"] = message
        st.rerun()

    def deployed(result: dict) -> None:
        (st.info if result.get("dry_run") or result.get("status") == "rolled_back" else st.success)(
            escape_markdown(result["message"]))

    background_task(ws.root, "deploy", "Checking and deploying", deployed)
elif not records:
    st.info("Deploy needs a completed run: start one above.")
