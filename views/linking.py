"""Linking: run or re-run linking in the background, choose min_confidence and top-k over the stored scores with
what calibration promises at each position, save them as everyone's default, and browse each commit beside its
evidence. Moving a slider filters the stored links: nothing is embedded or scored again."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from engine.config import LINK_MODES
from engine.errors import StudioError
from engine.linking.link import (
    commit_detail,
    evidence_for,
    filter_links,
    latest_run,
    link_counts,
    load_run_tables,
    threshold_neighbours,
)
from engine.linking.model import LinkModelError, load_model
from engine.linking.threshold import passes
from engine.processes import TaskBusy, start_task, task_status
from engine.text import plural
from views.access import action_button
from views.ui import escape_markdown, require_config

st.title("Linking")

config_path, workspace, config = require_config()
MODE_LABELS = {"best": "best: the learned, calibrated linker (default)",
               "semantic": "semantic: meaning of the message only",
               "hybrid": "hybrid: time window, tech keywords and meaning"}


# Query results are cached per (workspace, run id): a slider move re-filters them and never re-reads or re-scores.
@st.cache_data(show_spinner=False, max_entries=4)
def run_tables(workspace_key: str, run_id: int):
    return load_run_tables(Path(workspace_key), run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_commit(workspace_key: str, sha: str) -> dict:
    return commit_detail(Path(workspace_key), sha)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_evidence(workspace_key: str, run_id: int, sha: str) -> list[dict]:
    return evidence_for(Path(workspace_key), run_id, sha)


try:
    run = latest_run(workspace)
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

saved_confidence, saved_top_k = float(config.min_confidence), int(config.top_k)
stored_per_commit = 20
left, right = st.columns(2)
min_confidence = left.slider(
    "min_confidence", 0.0, 1.0, saved_confidence, 0.01, key="min_confidence",
    help="A confidence is a calibrated probability that the link is right: of the links at 0.8, about 8 in 10 are. "
         "Links at or above this become training context.")
top_k = right.slider("top_k", 1, stored_per_commit, min(saved_top_k, stored_per_commit), key="top_k",
                     help="At most this many links per commit, best first.")
unsaved = abs(min_confidence - saved_confidence) > 1e-9 or top_k != saved_top_k
left, middle, right = st.columns([3, 2, 2], vertical_alignment="bottom")
configured_mode = config.get("linking.mode")
mode = left.selectbox("Mode", LINK_MODES, index=LINK_MODES.index(run["mode"] if run else configured_mode), key="mode",
                      format_func=MODE_LABELS.get)
status = task_status(workspace, "link")
running = bool(status and status.running)
label = "Relink" if run else "Run linking"
if action_button(label, where=middle, type="primary", icon=":material/link:", key="run_link", disabled=running,
                 help="Reads new source rows and links again in the background, writing the pairs and the MLX "
                      "folder at the min_confidence and top_k shown here."):
    try:
        status = start_task(workspace, "link", [
            "link", "--config", str(Path(config_path).resolve()), "--workspace", str(Path(workspace).resolve()),
            "--mode", mode, "--min-confidence", f"{min_confidence:g}", "--top-k", str(top_k)])
        st.rerun()  # draw the page again with the button disabled and the progress panel polling
    except TaskBusy as exc:
        st.info(escape_markdown(str(exc)))
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
if action_button("Save as default", where=right, icon=":material/save:", key="save_default", disabled=not unsaved,
                 help=f"Write min_confidence and top_k to {escape_markdown(config_path)}: link, validate, collect "
                      "and the scheduler use them."):
    try:
        config.with_values({"confidence.min_confidence": round(min_confidence, 4),
                            "filtering.top_k_matches": int(top_k)}).save(config_path)
        saved_confidence, saved_top_k, unsaved = min_confidence, top_k, False
        st.toast(escape_markdown(f"Saved min_confidence {min_confidence:g} and top_k {top_k} to "
                                 f"{Path(config_path).name}."))
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
if unsaved:
    st.caption(f"Not saved yet: the CLI, validation and collection use the saved min_confidence "
               f"{saved_confidence:g} and top_k {saved_top_k}. Relink uses the values shown.")


@st.fragment(run_every=1.0 if running else None)
def task_panel() -> None:
    current = task_status(workspace, "link")
    if current is None:
        return
    if current.running:
        fraction = min(1.0, current.done / current.total) if current.total else 0.0
        st.progress(fraction, text=f"Linking in the background: {current.describe()}")
        st.caption("You can leave this page; the run goes on and this panel picks it up again.")
        return
    seen = st.session_state.get("link_task_seen")
    if seen != current.updated:
        st.session_state["link_task_seen"] = current.updated
        if running:  # it finished while this page watched it: show the new run
            st.cache_data.clear()
            st.rerun(scope="app")
    if current.state == "failed":
        st.error(escape_markdown(f"The last linking run failed: {current.error}"))
    elif current.result and current.result.get("link"):
        result = current.result["link"]
        held = result.get("mlx_counts", {}).get("held_for_review")
        st.success(f"Linked in {current.elapsed:.0f} s: embedded {plural(result['embedded_texts'], 'new text')}, "
                   f"{result['cached_texts']:,} from the cache; wrote {plural(result['pairs'], 'pair')} at "
                   f"min_confidence {result['min_confidence']:g}, top_k {result['top_k']}.", icon=":material/done:")
        if held:
            st.warning(f"{plural(held, 'pair')} may hold secrets or personal data, so they were left out of the MLX "
                       "training folder: review them on the Validation page, then export.", icon=":material/shield:")


task_panel()

if run is None:
    if not running:
        st.info("No links yet. Press **Run linking** to read the sources and link every commit to its knowledge "
                "(the first run embeds every distinct text once; later runs only new ones).")
    st.stop()

stats = run["stats"]
st.caption(escape_markdown(f"Run {run['id']} · {run['mode']} · {run['model']} · {run['started_at']} · "
                           f"{stats.get('stored_links', 0):,} scored links stored, "
                           f"{stats.get('representatives', 0):,} distinct knowledge items"))

try:
    tables = run_tables(str(workspace), run["id"])
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

counts = link_counts(tables, min_confidence, top_k)
columns = st.columns(5)
columns[0].metric("Links kept", f"{counts['links']:,}")
columns[1].metric("Commits linked", f"{counts['linked_commits']:,} of {counts['commits']:,}")
columns[2].metric("Training pairs", f"{counts['pairs']:,}", help="One per (commit, changed code file).")
columns[3].metric("Expected precision", "-" if counts["expected_precision"] is None else
                  f"{counts['expected_precision']:.0%}",
                  help="The mean calibrated confidence of the kept links: the share of them expected to be right.")
columns[4].metric("Knowledge items used", f"{counts['knowledge_items']:,}")

candidates = tables.links[tables.links["rank"] <= top_k]
histogram = pd.DataFrame({"confidence": candidates["confidence"].astype(float),
                          "links": np.where(passes(candidates["rank"], candidates["confidence"], min_confidence, top_k),
                                            "kept", "dropped")})
bars = alt.Chart(histogram).mark_bar().encode(
    x=alt.X("confidence:Q", bin=alt.Bin(extent=[0, 1], step=0.025), title="confidence"),
    y=alt.Y("count():Q", title="links", scale=alt.Scale(type="symlog")),
    color=alt.Color("links:N", scale=alt.Scale(domain=["kept", "dropped"], range=["#2e7d32", "#bdbdbd"]),
                    legend=alt.Legend(title=None)),
)
threshold = alt.Chart().mark_rule(color="#c62828", strokeWidth=2).encode(x=alt.datum(min_confidence))
chart_left, chart_right = st.columns([3, 2])
chart_left.altair_chart((bars + threshold).properties(height=220, title="This run's links by confidence"),
                        width="stretch")
try:
    reliability = load_model().info.get("reliability") or []
except LinkModelError:
    reliability = []
if reliability:
    frame = pd.DataFrame(reliability)
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(color="#9e9e9e", strokeDash=[4, 4]) \
        .encode(x="x:Q", y="y:Q")
    points = alt.Chart(frame).mark_line(point=True, color="#1565c0").encode(
        x=alt.X("confidence:Q", title="confidence", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("precision:Q", title="share right", scale=alt.Scale(domain=[0, 1])),
        tooltip=["confidence", "precision", "links"])
    chart_right.altair_chart((diagonal + points).properties(height=220, title="Reliability (held-out histories)"),
                             width="stretch")
    chart_right.caption("Each point: links of that confidence on real histories the model was not trained on, and "
                        "the share of them that was right. On the dashed line, confidence = precision.")

above, below = threshold_neighbours(tables, min_confidence, top_k, count=5)
if len(above) or len(below):
    with st.expander("Links just above and just below the threshold", expanded=False):
        st.caption("What a small move of the slider adds or drops.")
        near = pd.concat([above.assign(side="kept"), below.assign(side="dropped")])
        st.dataframe(near[["side", "confidence", "commit", "knowledge"]], hide_index=True, width="stretch",
                     column_config={"confidence": st.column_config.NumberColumn(format="%.3f")})

st.subheader("Pairs")
kept = filter_links(tables.links, min_confidence, top_k)
if kept.empty:
    st.info("No commit has a link at this threshold; lower min_confidence to see pairs.")
    st.stop()
commits = tables.commits.set_index("sha")
linked = commits.loc[commits.index.isin(kept["commit_sha"].unique())].sort_values("timestamp", ascending=False)
best = kept.groupby("commit_sha")["confidence"].max()
options = list(linked.index)
sha = st.selectbox(
    f"Commit ({len(options):,} linked)", options, key="commit",
    format_func=lambda value: f"{commits.at[value, 'timestamp'][:16].replace('T', ' ')} · {value[:8]} · "
                              f"{commits.at[value, 'message'].splitlines()[0][:70]} · best {best[value]:.2f}")
detail = cached_commit(str(workspace), sha)
evidence = [item for item in cached_evidence(str(workspace), run["id"], sha)
            if passes(item["rank"], item["confidence"], min_confidence, top_k)]
left, right = st.columns(2)
with left:
    st.text(detail["message"].splitlines()[0])
    if "\n" in detail["message"].strip():
        st.text(detail["message"].split("\n", 1)[1].strip())
    st.caption(escape_markdown(f"{detail['sha']} · {detail['timestamp'][:19].replace('T', ' ')} UTC · "
                               f"{detail['author']}"))
    paths = [item["path"] for item in detail["files"]]
    path = st.selectbox("File (one training pair each)", paths, key="file")
    change = next(item for item in detail["files"] if item["path"] == path)
    st.caption(escape_markdown(f"{change['change_type']} · {change['added_lines']} added lines"))
    st.code(change["added_code"], language=None, line_numbers=True)
with right:
    st.text(f"Evidence ({len(evidence)} of {len(cached_evidence(str(workspace), run['id'], sha))} stored)")
    for item in evidence:
        with st.container(border=True):
            where = " · ".join(filter(None, (item["app_name"], item["window_name"])))
            when = (item["timestamp"] or "")[:16].replace("T", " ")
            st.text(f"#{item['rank']} · confidence {item['confidence']:.3f} · {item['knowledge_type']} · {where} · "
                    f"{when}")
            found = item["evidence"]
            parts = [f"{name.replace('_', ' ')} {value:.2f}" for name, value in found.get("features", {}).items()
                     if value]
            if not found.get("features"):
                parts.append(f"semantic {item['semantic']:.3f}")
                if item["keyword"] is not None:
                    parts.append(f"keyword {item['keyword']:.3f}")
            if found.get("references"):
                parts.append("references: " + ", ".join(found["references"]))
            if found.get("keywords"):
                parts.append("keywords: " + ", ".join(found["keywords"]))
            if found.get("hours_before_commit") is not None:
                parts.append(f"seen {found['hours_before_commit']:.1f} h before the commit")
            st.caption(escape_markdown(" · ".join(parts)))
            text = item["text"].strip()
            st.text(text[:1200] + (" …" if len(text) > 1200 else ""))
