"""Linking: run or re-run the matcher, tune min_confidence and top-k over stored scores, browse each commit beside
its evidence. Moving a slider filters the stored links: nothing is embedded or scored again."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from engine.errors import StudioError
from engine.extract import extract
from engine.linking.link import (
    commit_detail,
    evidence_for,
    filter_links,
    latest_run,
    link,
    link_counts,
    load_run_tables,
)
from engine.linking.matcher import MODES
from views.ui import progress_bar, require_config

st.title("Linking")

config_path, workspace, config = require_config()


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
    st.error(str(exc))
    st.stop()

left, middle, right = st.columns([2, 2, 3], vertical_alignment="bottom")
configured_mode = config.get("linking.mode")
mode = left.selectbox("Mode", MODES, index=MODES.index(run["mode"] if run else configured_mode), key="mode",
                      help="semantic: seed v2 (message cosine). hybrid: seed v1 (time window, keywords, weights). "
                           "best: message, paths and identifiers vs text, references seen on screen, and time.")
label = "Relink" if run else "Run linking"
if middle.button(label, type="primary", icon=":material/link:", key="run_link"):
    bar, show_progress = progress_bar("Reading new source rows ...")

    try:
        extract(config, workspace, progress=show_progress)
        result = link(config, workspace, mode, progress=show_progress)
    except StudioError as exc:
        bar.empty()
        st.error(str(exc))
        st.stop()
    bar.progress(1.0, text=f"Linked in {sum(result.seconds.values()):.1f} s: embedded {result.embedded_texts:,} new "
                           f"texts, {result.cached_texts:,} from the cache; wrote {result.pairs:,} pairs")
    if result.mlx_counts.get("held_for_review"):
        st.warning(f"{result.mlx_counts['held_for_review']:,} pairs may hold secrets or personal data, so they were "
                   "left out of the MLX training folder: review them on the Validation page, then export.",
                   icon=":material/shield:")
    run = latest_run(workspace)

if run is None:
    st.info("No links yet. Press **Run linking** to read the sources and link every commit to its knowledge "
            "(the first run embeds every distinct text once; later runs only new ones).")
    st.stop()

stats = run["stats"]
right.caption(f"Run {run['id']} · {run['mode']} · {run['model']} · {run['started_at']} · "
              f"{stats.get('stored_links', 0):,} scored links stored, "
              f"{stats.get('representatives', 0):,} distinct knowledge items")

try:
    tables = run_tables(str(workspace), run["id"])
except StudioError as exc:
    st.error(str(exc))
    st.stop()

stored_per_commit = int(tables.links["rank"].max()) if len(tables.links) else 1
left, right = st.columns(2)
min_confidence = left.slider("min_confidence", 0.0, 1.0, float(config.min_confidence), 0.01, key="min_confidence",
                             help="Links at or above this confidence become training context.")
top_k = right.slider("top_k", 1, max(2, min(stored_per_commit, 20)), min(config.top_k, max(2, stored_per_commit)),
                     key="top_k", help="At most this many links per commit, best first.")

counts = link_counts(tables, min_confidence, top_k)
columns = st.columns(4)
columns[0].metric("Links kept", f"{counts['links']:,}")
columns[1].metric("Commits linked", f"{counts['linked_commits']:,} of {counts['commits']:,}")
columns[2].metric("Training pairs", f"{counts['pairs']:,}", help="One per (commit, changed code file).")
columns[3].metric("Knowledge items used", f"{counts['knowledge_items']:,}")

candidates = tables.links[tables.links["rank"] <= top_k]
histogram = pd.DataFrame({"confidence": candidates["confidence"].astype(float),
                          "kept": candidates["confidence"] >= min_confidence})
bars = alt.Chart(histogram).mark_bar().encode(
    x=alt.X("confidence:Q", bin=alt.Bin(extent=[0, 1], step=0.025), title="confidence"),
    y=alt.Y("count():Q", title="links"),
    color=alt.Color("kept:N", scale=alt.Scale(domain=[True, False], range=["#2e7d32", "#bdbdbd"]),
                    legend=alt.Legend(title="kept")),
)
threshold = alt.Chart().mark_rule(color="#c62828", strokeWidth=2).encode(x=alt.datum(min_confidence))
st.altair_chart((bars + threshold).properties(height=220), width="stretch")

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
            if item["rank"] <= top_k and item["confidence"] >= min_confidence]
left, right = st.columns(2)
with left:
    st.markdown(f"**{detail['message'].splitlines()[0]}**")
    if "\n" in detail["message"].strip():
        st.text(detail["message"].split("\n", 1)[1].strip())
    st.caption(f"`{detail['sha']}` · {detail['timestamp'][:19].replace('T', ' ')} UTC · {detail['author']}")
    paths = [item["path"] for item in detail["files"]]
    path = st.selectbox("File (one training pair each)", paths, key="file")
    change = next(item for item in detail["files"] if item["path"] == path)
    st.caption(f"{change['change_type']} · {change['added_lines']} added lines")
    st.code(change["added_code"], language=None, line_numbers=True)
with right:
    st.markdown(f"**Evidence** ({len(evidence)} of {len(cached_evidence(str(workspace), run['id'], sha))} stored)")
    icons = {"ocr": ":material/desktop_windows:", "ui": ":material/desktop_windows:", "audio": ":material/mic:",
             "document": ":material/description:"}
    for item in evidence:
        with st.container(border=True):
            where = " · ".join(filter(None, (item["app_name"], item["window_name"])))
            when = (item["timestamp"] or "")[:16].replace("T", " ")
            st.markdown(f"{icons.get(item['knowledge_type'], '')} **#{item['rank']} · {item['confidence']:.3f}** · "
                        f"{item['knowledge_type']} · {where} · {when}")
            parts = [f"semantic {item['semantic']:.3f}"]
            for name, key in (("keyword", "keyword"), ("time", "time_score"), ("reference", "reference")):
                if item[key] is not None:
                    parts.append(f"{name} {item[key]:.3f}")
            found = item["evidence"]
            if found.get("references"):
                parts.append("references: " + ", ".join(found["references"]))
            if found.get("keywords"):
                parts.append("keywords: " + ", ".join(found["keywords"]))
            if found.get("hours_before_commit") is not None:
                parts.append(f"{found['hours_before_commit']:.1f} h before the commit")
            st.caption(" · ".join(parts))
            text = item["text"].strip()
            st.text(text[:1200] + (" …" if len(text) > 1200 else ""))
