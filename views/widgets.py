"""Widgets: Übersicht widget datasets (seed 004) for the active workspace's `widgets/` folder.

Manifest and status, then the steps in order: download, analyse, prompts (with an editor), token budget with a
keep / exclude / trim strategy editor and chart, and building an Apple adapter-format dataset.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from engine.errors import StudioError
from engine.records import SPLITS
from engine.settings import active_workspace
from engine.store import Workspace
from engine.uebersicht import WidgetPaths
from engine.uebersicht.budget import DEFAULT_MAX_TOKENS, evaluate_training_data, set_actions
from engine.uebersicht.dataset import create_dataset
from engine.uebersicht.jobs import download_job, start_download_job
from engine.uebersicht.manifest import ManifestError, ManifestMissingError, load_manifest, save_manifest
from engine.uebersicht.prompts import generate_prompts, read_prompt, save_prompt
from engine.uebersicht.report import read_report, write_report
from engine.uebersicht.status import list_datasets, strategy_rows, widget_overview
from views.access import action_button, action_submit, can, refusal
from views.ui import code_span, escape_markdown

st.title("Widgets")
root = active_workspace() / "widgets"
paths = WidgetPaths.under(root)
st.caption(f"Folder: {code_span(root)} (widget_list.json, downloads/, prompts/, the strategy and datasets/ live here)")

# -- manifest ------------------------------------------------------------------------------------------------------
try:
    overview = widget_overview(paths)
except ManifestError as exc:
    if isinstance(exc, ManifestMissingError):
        st.info(
            "No widget manifest yet. Upload the Übersicht gallery's widgets.json below (it is saved as "
            f"{code_span(paths.manifest)}), or copy it there and reload."
        )
    else:
        st.error(escape_markdown(f"{exc} Upload a good one below to replace it."))
    upload = st.file_uploader("Widget manifest (widgets.json)", type=["json"], disabled=not can("change"),
                              help=None if can("change") else refusal("change"))
    if upload is not None and can("change"):
        try:
            saved = save_manifest(upload.getvalue(), paths.manifest)
        except StudioError as upload_error:
            st.error(escape_markdown(str(upload_error)))
        else:
            st.session_state["widgets_notice"] = f"Saved the manifest: {len(saved.widgets)} widgets."
            st.rerun()
    st.stop()
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

left, middle, right, last = st.columns(4)
left.metric("Widgets in the manifest", len(overview.rows))
middle.metric("Downloaded", overview.count("download", "downloaded"))
right.metric("JSX widgets", len(overview.jsx_ids))
last.metric("With a prompt", sum(bool(row["prompt"]) for row in overview.rows))
for label, reason in overview.manifest_skipped:
    st.warning(escape_markdown(f"Manifest entry {label} skipped: {reason}."))
st.dataframe(pd.DataFrame(overview.rows), hide_index=True, width="stretch", key="status_table")

# -- download, analyse, draft prompts -------------------------------------------------------------------------------
st.subheader("1. Download and analyse")
left, middle, right = st.columns(3)
job = download_job(paths)
if action_button("Download widgets", where=left, icon=":material/download:", disabled=bool(job and job.running),
                 key="download", help="Runs in the background; widgets already downloaded are skipped."):
    try:
        start_download_job(paths)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state["widgets_download_seen"] = False
        st.rerun()


@st.fragment(run_every=1.0 if job and job.running else None)
def download_progress() -> None:
    current = download_job(paths)
    if current is None:
        return
    if current.running:
        total = current.total or 0
        st.progress(current.done / total if total else 0.0,
                    text=f"Downloading: {current.done} of {total or '?'} widgets done")
        return
    if current.problem:
        st.error(escape_markdown(current.problem))
    elif current.finished and not st.session_state.get("widgets_download_seen", True):
        # The first poll after the job ended: refresh the whole page so the status table shows the new downloads.
        st.session_state["widgets_download_seen"] = True
        st.session_state["widgets_notice"] = f"Downloads: {current.summary}. Press Analyse downloads next."
        st.rerun(scope="app")


download_progress()
if action_button("Analyse downloads", where=middle, icon=":material/analytics:",
                 help="Writes widget_processing_results.csv."):
    try:
        summary = write_report(load_manifest(paths.manifest), paths.downloads, paths.csv, paths.download_log)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state["widgets_notice"] = (
            f"Report: {summary.rows} widgets, {summary.downloaded} downloaded, {summary.jsx} JSX."
        )
        st.rerun()
if action_button("Draft prompts", where=right, icon=":material/edit_note:", disabled=not overview.has_report,
                 help="From each description and its JSX; hand-edited prompts are never overwritten."):
    try:
        drafted = generate_prompts(read_report(paths.csv), paths.downloads, paths.prompts)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state["widgets_notice"] = f"Prompts: {drafted.summary()}."
        for key in [key for key in st.session_state if str(key).startswith("prompt_text_")]:
            del st.session_state[key]  # the prompt boxes show the drafted files now, not what they held before
        st.rerun()
if notice := st.session_state.get("widgets_notice"):
    st.success(escape_markdown(notice))

# -- prompts --------------------------------------------------------------------------------------------------------
st.subheader("2. Prompts")
prompt_state = {row["widget"]: row["prompt"] for row in overview.rows}
if not overview.jsx_ids:
    st.info("No JSX widget yet: download the widgets, then press Analyse downloads.")
else:
    if not any(prompt_state[widget] for widget in overview.jsx_ids):
        st.info("No prompt yet: press Draft prompts, or write one below.")
    chosen = st.selectbox("Widget", overview.jsx_ids, key="prompt_widget")
    labels = {"hand-edited": "hand-edited", "drafted": "drafted from its code", "": "no prompt yet"}
    label = labels[prompt_state[chosen]]
    text = st.text_area(f"Prompt for {escape_markdown(chosen)} ({label})", read_prompt(paths.prompts, chosen) or "",
                        height=140, key=f"prompt_text_{chosen}")
    if action_button("Save prompt", icon=":material/save:", key="save_prompt",
                     help="A saved prompt is yours: drafting never replaces it."):
        try:
            save_prompt(paths.prompts, chosen, text)
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            st.success(escape_markdown(f"Saved the prompt for {chosen}; drafting will leave it alone."))

# -- token budget and strategy --------------------------------------------------------------------------------------
st.subheader("3. Token budget and strategy")
with st.form("evaluate"):
    left, middle, right = st.columns([1, 2, 1])
    current_limit = overview.strategy["max_sequence_length"] if overview.strategy else DEFAULT_MAX_TOKENS
    max_tokens = left.number_input("max_sequence_length", 16, 1_000_000, current_limit, key="max_tokens")
    model = middle.text_input("Tokenizer model (folder or cached Hugging Face id; empty: tiktoken cl100k_base)",
                              key="tokenizer_model")
    trim = right.checkbox("Trim instead of exclude when that fits", key="trim")
    evaluate = action_submit("Evaluate", icon=":material/calculate:",
                                     help="Recomputes the strategy; widgets you excluded by hand stay excluded, "
                                     "other choices made below are replaced.")
if evaluate:
    try:
        evaluation = evaluate_training_data(paths, int(max_tokens), model.strip() or None, trim=trim)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        counts = ", ".join(f"{n} {action}" for action, n in evaluation.strategy["summary"].items())
        st.session_state["strategy_notice"] = f"Strategy: {counts} ({'; '.join(evaluation.notes)})."
        st.rerun()

if overview.strategy is None:
    st.info("No strategy yet: draft prompts, then press Evaluate.")
else:
    limit = overview.strategy["max_sequence_length"]
    table = pd.DataFrame(strategy_rows(overview.strategy))
    chart_data = table.assign(limit=limit)
    bars = alt.Chart(chart_data).mark_bar().encode(
        x=alt.X("widget:N", sort="-y", title="Widget"),
        y=alt.Y("total tokens:Q", title="Tokens in the complete example"),
        color=alt.Color("action:N", scale=alt.Scale(domain=["keep", "exclude", "trim"],
                                                    range=["#4c9a2a", "#c0392b", "#e6a817"])),
        tooltip=["widget", "total tokens", "widget tokens", "action", "note"],
    )
    rule = alt.Chart(pd.DataFrame({"limit": [limit]})).mark_rule(strokeDash=[6, 4]).encode(y="limit:Q")
    st.altair_chart(bars + rule, width="stretch")
    summary = ", ".join(f"{n} {action}" for action, n in overview.strategy["summary"].items())
    st.caption(escape_markdown(f"Limit {limit} tokens (dashed line) · {summary}"))
    edited = st.data_editor(
        table,
        hide_index=True,
        width="stretch",
        disabled=["widget", "total tokens", "widget tokens", "note"],
        column_config={"action": st.column_config.SelectboxColumn("action", options=["keep", "exclude", "trim"],
                                                                  required=True)},
        # a new key after each save: the grid starts from the saved strategy instead of syncing its old edits
        key=f"strategy_editor_{st.session_state.get('strategy_saves', 0)}",
    )
    changes = {row["widget"]: row["action"] for row in edited.to_dict("records")
               if row["action"] != overview.strategy["strategy"][row["widget"]]["action"]}
    if action_button(f"Save strategy ({len(changes)} change{'s' if len(changes) != 1 else ''})",
                     icon=":material/save:", disabled=not changes, key="save_strategy"):
        try:
            saved = set_actions(paths, changes)
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            counts = ", ".join(f"{n} {action}" for action, n in saved["summary"].items())
            st.session_state["strategy_notice"] = f"Saved the strategy: {counts}."
            st.session_state["strategy_saves"] = st.session_state.get("strategy_saves", 0) + 1
            st.rerun()
if notice := st.session_state.get("strategy_notice"):
    st.success(escape_markdown(notice))

# -- datasets -------------------------------------------------------------------------------------------------------
st.subheader("4. Dataset")
with st.form("create_dataset"):
    set_name = st.text_input("Dataset name", "widgets_v1", key="set_name")
    build = action_submit("Build dataset", icon=":material/dataset:",
                                  help="Apple adapter format, 80/10/10 split by widget; the strategy is applied.")
if build:
    try:
        built = create_dataset(paths, set_name.strip(), workspace=Workspace.open(active_workspace()))
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.success(escape_markdown(f"Built {built.folder}: {built.summary()}."))
        if built.held:
            st.warning(escape_markdown(
                f"{len(built.held)} widget(s) hold possible sensitive data and were left out until reviewed: "
                + "; ".join(f"{widget_id} ({', '.join(kinds)})" for widget_id, kinds in built.held)
                + ". Review them on the Review page, then build the dataset again."))
for dataset in list_datasets(paths):
    with st.expander(escape_markdown(f"{dataset.name}: " + ", ".join(f"{dataset.counts[s]} {s}" for s in SPLITS)),
                     expanded=dataset.name == set_name.strip()):
        if dataset.problems:
            st.error(escape_markdown(f"{len(dataset.problems)} line(s) break the Apple format: "
                                     + "; ".join(dataset.problems[:5])))
        else:
            st.caption("Every line passes the Apple-format validator. Folder: "
                       f"{code_span(paths.datasets / dataset.name)}")
        splits = dataset.info.get("splits", {})
        st.dataframe(
            pd.DataFrame([{"split": split, "widget": widget} for split in SPLITS for widget in splits.get(split, [])]),
            hide_index=True, key=f"dataset_{dataset.name}",
        )
        if dataset.info.get("excluded"):
            st.caption(escape_markdown("Excluded: " + "; ".join(f"{e['id']} ({e['reason']})"
                                                                for e in dataset.info["excluded"])))
