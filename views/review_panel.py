"""The review panel the Review page and the Validation page's review tab share (a view module, not a page).

Items are bound by their stable key, never by a position: the picker's value is the item's key, and each answer
button carries the key of the item drawn beside it, so an answer always lands on the item shown, whatever was
uploaded, filtered or answered in between. Texts are shown raw in monospace, exactly as they will be trained, with
each finding masked and marked in place and the view scrolled to the first one; nothing from the data is read as
Markdown or HTML (every piece is HTML-escaped; labels go through escape_markdown).

Keyboard: J next, K previous, G good, B bad, X redact, S skip, U undo (Streamlit button shortcuts; they do nothing
while typing in a text box).
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import streamlit as st

from engine.dataset.queue import (
    SOURCE_LABELS,
    SOURCES,
    QueueFilter,
    QueueItem,
    attach_statuses,
    decide,
    decide_all,
    filter_queue,
    load_queue,
    queue_fingerprint,
    review_progress,
    reviewers_of,
)
from engine.dataset.redact import masked_segments
from engine.dataset.review import undo_last
from engine.dataset.sensitive import KINDS
from engine.errors import StudioError
from engine.records import TIERS
from engine.store import Workspace
from views.access import can, member, refusal
from views.ui import escape_markdown

ANSWER_BUTTONS = (("good", "Good (keep)", "G"), ("bad", "Bad (drop)", "B"), ("redact", "Redact", "X"),
                  ("skip", "Skip", "S"))
STATE_LABELS = {"mine": "not answered by me", "pending": "pending", "partial": "partly answered",
                "conflict": "conflict", "good": "good", "bad": "bad", "redact": "redact"}


# ---------------------------------------------------------------------------------------------------- loading

@st.cache_data(show_spinner="Reading the review queue ...", max_entries=8)
def _cached_queue(root: str, pair_files: tuple[str, ...] | None, min_confidence: float, collected: bool,
                  fingerprint: str) -> list[QueueItem]:
    del fingerprint  # part of the cache key only: the queue's data changed
    return load_queue(Workspace.open(root), pair_files, min_confidence, collected)


def queue_items(workspace: Workspace, pair_files: list[str] | None, min_confidence: float,
                collected: bool = True) -> list[QueueItem]:
    """The queue (records and findings cached until the data changes), with statuses as answered right now."""
    files = tuple(str(Path(path).expanduser().resolve()) for path in pair_files) if pair_files is not None else None
    fingerprint = queue_fingerprint(workspace, files)
    items = _cached_queue(str(workspace.root), files, min_confidence, collected, fingerprint)
    return attach_statuses(workspace, items, min_confidence)


# -------------------------------------------------------------------------------------------------- rendering

def field_html(path: str, text: str, findings: list, box_id: str) -> str:
    """One text as trained: monospace, whitespace kept, every character escaped, findings masked and marked; a
    small script (ours, no data in it) scrolls the box to the first finding."""
    pieces = []
    for piece, kind in masked_segments(text, findings):
        if kind is None:
            pieces.append(html.escape(piece, quote=True))
        else:
            label = html.escape(kind, quote=True)
            pieces.append(f'<mark data-kind="{label}" title="{label}" style="background:#ffd54f;padding:0 2px">'
                          f'{html.escape(piece, quote=True)}<small> [{label}]</small></mark>')
    empty = '<span style="color:#888">(empty)</span>' if not text else ""
    body = "".join(pieces)
    return (f'<div style="font-size:0.8em;color:#555;margin-top:0.4em">{html.escape(path)} · {len(text):,} '
            f'characters</div>'
            f'<pre id="{box_id}" data-field="{html.escape(path, quote=True)}" style="white-space:pre-wrap;'
            'word-break:break-word;font-family:monospace;font-size:0.85em;border:1px solid #ddd;padding:0.5em;'
            f'border-radius:4px;max-height:22em;overflow:auto;margin:0">{body}{empty}</pre>'
            f'<script>(function(){{var box=document.getElementById("{box_id}");'
            'var mark=box&&box.querySelector("mark");'
            'if(mark){box.scrollTop=Math.max(0,mark.offsetTop-box.offsetTop-box.clientHeight/3);}})();</script>')


def _label(item: QueueItem, reviewer: str) -> str:
    kinds = ", ".join(item.kinds) or "no findings"
    mine = item.answer_of(reviewer)
    return (f"{item.origin} · {kinds} · {item.status.label if item.status else 'pending'}"
            + (f" · you: {mine}" if mine else ""))


def show_item(item: QueueItem) -> None:
    """The item's texts as trained, and what is known about it beside them."""
    box = hashlib.sha1(item.key.encode()).hexdigest()[:10]
    text_column, facts_column = st.columns([3, 2])
    with text_column:
        for number, (path, text, findings) in enumerate(item.fields()):
            st.html(field_html(path, text, findings, f"rq-{box}-{number}"), unsafe_allow_javascript=True)
    with facts_column:
        facts = [("Where", item.origin), ("Source", SOURCE_LABELS[item.source]), ("Tier", item.tier or "-"),
                 ("Confidence", "-" if item.confidence is None else f"{item.confidence:.3f}"),
                 ("Status", item.status.label if item.status else "pending"), ("Key", item.key[:12])]
        facts += [("Also", origin) for origin in item.also]
        st.dataframe([{"": name, "value": value} for name, value in facts], hide_index=True, key=f"facts_{box}",
                     width="stretch")
        if item.findings:
            st.caption("Findings (values never shown)")
            st.dataframe([{"field": f.field, "kind": f.kind, "what": KINDS.get(f.kind, ("", f.kind))[1],
                           "start": f.start, "end": f.end} for f in item.findings], hide_index=True,
                         key=f"findings_{box}", width="stretch")
        if item.status and item.status.answers:
            st.caption("Answers")
            st.dataframe([{"reviewer": answer.reviewer, "answer": answer.decision + (" (settles)" if answer.settles
                                                                                   else ""),
                           "when": answer.decided_at[:19].replace("T", " ")}
                          for answer in item.status.answers.values()], hide_index=True, key=f"answers_{box}",
                         width="stretch")


# ------------------------------------------------------------------------------------------------------ filters

def queue_filter(items: list[QueueItem], prefix: str, sources: bool = True) -> QueueFilter:
    """The filter widgets; returns what they ask for."""
    kinds = sorted({kind for item in items for kind in item.kinds})
    reviewers = reviewers_of(items)
    with st.container(border=True):
        search = st.text_input("Search the texts (findings are masked, so a secret cannot be searched for)",
                               key=f"{prefix}_search")
        first, second, third = st.columns(3)
        states = first.multiselect("Status", list(STATE_LABELS), format_func=STATE_LABELS.get,
                                   key=f"{prefix}_states")
        chosen_kinds = second.multiselect("Finding kind", kinds, key=f"{prefix}_kinds")
        tiers = third.multiselect("Tier", list(TIERS), key=f"{prefix}_tiers")
        fourth, fifth, sixth = st.columns(3)
        chosen_sources = fourth.multiselect("Source", list(SOURCES), format_func=SOURCE_LABELS.get,
                                            key=f"{prefix}_sources") if sources else []
        answered_by = fifth.selectbox("Answered by", ["anyone", *reviewers], key=f"{prefix}_answered_by")
        low, high = sixth.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.05, key=f"{prefix}_confidence",
                                 help="Items without a link confidence are left out once you narrow this.")
        flagged = st.checkbox("Only items with findings", key=f"{prefix}_flagged")
    return QueueFilter(set(chosen_sources), set(chosen_kinds), set(tiers), set(states),
                       None if answered_by == "anyone" else answered_by,
                       low if low > 0 else None, high if high < 1 else None, search, flagged)


def progress_bars(items: list[QueueItem], reviewer: str) -> None:
    progress = review_progress(items, [reviewer])
    st.progress(progress.percent / 100, text=f"Resolved {progress.resolved:,} of {progress.total:,} items "
                f"({progress.percent:.0f}%) · {progress.by_state['conflict']:,} in conflict · "
                f"{progress.by_state['partial']:,} waiting for more answers")
    for name, answered in progress.by_reviewer.items():
        share = answered / progress.total if progress.total else 1.0
        st.progress(share, text=f"{escape_markdown(name)}{' (you)' if name == reviewer else ''}: answered "
                                f"{answered:,} of {progress.total:,}")


# -------------------------------------------------------------------------------------------------- the panel

def _record(workspace: Workspace, item: QueueItem, decision: str, prefix: str, following: str | None) -> None:
    """A button's callback: runs before the rerun, with the key of the item that was on screen."""
    if not can("review"):
        st.session_state[f"{prefix}_notice"] = ("error", refusal("review"))
        return
    reviewer = member().identity
    try:
        decide(workspace, item, decision, reviewer)
    except StudioError as exc:
        st.session_state[f"{prefix}_notice"] = ("error", str(exc))
        return
    st.session_state[f"{prefix}_notice"] = ("success", f"Recorded {item.origin}: {decision} by {reviewer}.")
    if following is not None:
        st.session_state[f"{prefix}_item"] = following


def _undo(workspace: Workspace, prefix: str) -> None:
    if not can("review"):
        st.session_state[f"{prefix}_notice"] = ("error", refusal("review"))
        return
    keys = undo_last(workspace, member().identity)
    if not keys:
        st.session_state[f"{prefix}_notice"] = ("info", "Nothing of yours to undo.")
        return
    st.session_state[f"{prefix}_notice"] = ("success", f"Undid your last answer ({len(keys)} item"
                                                       f"{'s' if len(keys) != 1 else ''}).")
    st.session_state[f"{prefix}_item"] = keys[0]


def _picked(prefix: str, picker: str) -> None:
    st.session_state[f"{prefix}_item"] = st.session_state[picker]


def _move(prefix: str, key: str | None) -> None:
    if key is not None:
        st.session_state[f"{prefix}_item"] = key


def _bulk(workspace: Workspace, items: list[QueueItem], prefix: str) -> None:
    if not can("review"):
        st.session_state[f"{prefix}_notice"] = ("error", refusal("review"))
        return
    decision = st.session_state[f"{prefix}_bulk_decision"]
    try:
        count = decide_all(workspace, items, decision, member().identity)
    except StudioError as exc:
        st.session_state[f"{prefix}_notice"] = ("error", str(exc))
        return
    st.session_state[f"{prefix}_notice"] = ("success", f"Recorded {decision} on {count:,} items as one action "
                                                       "(Undo takes it all back).")


def review_panel(workspace: Workspace, items: list[QueueItem], prefix: str, *, sources: bool = True) -> None:
    """Filters, progress, the item on screen with its answer buttons, undo and bulk answers."""
    reviewer = member().identity
    wanted = queue_filter(items, prefix, sources)
    shown = filter_queue(items, wanted, reviewer)
    progress_bars(items, reviewer)
    notice = st.session_state.pop(f"{prefix}_notice", None)
    if notice:
        getattr(st, notice[0])(escape_markdown(notice[1]))
    if not shown:
        st.info("No item matches these filters." if items else "Nothing to review yet.")
        return
    keys = [item.key for item in shown]
    by_key = {item.key: item for item in shown}
    key = st.session_state.get(f"{prefix}_item")
    if key not in by_key:
        # The item on screen left the filtered list (or none was picked): show the first one still waiting for me.
        waiting = [item.key for item in shown if not item.answer_of(reviewer)]
        key = st.session_state[f"{prefix}_item"] = (waiting or keys)[0]
    # The item on screen is our own state (a key), never the picker's position. The picker is keyed by its labels:
    # when they change (an upload, an answer, a filter) it is a new widget, so it can never show a stale label
    # for the item below it; its value is set from our state before it is drawn, and it writes back on change.
    labels = [_label(by_key[k], reviewer) for k in keys]
    picker = f"{prefix}_picker_" + hashlib.sha1("\n".join(keys + labels).encode()).hexdigest()[:12]
    st.session_state[picker] = key
    st.selectbox(f"Item ({len(shown):,} match)", keys, format_func=dict(zip(keys, labels, strict=True)).get,
                 key=picker, on_change=_picked, args=(prefix, picker))
    item = by_key[key]
    position = keys.index(key)
    previous = keys[position - 1] if position > 0 else None
    after = keys[position + 1:]
    following = next((k for k in after if not by_key[k].answer_of(reviewer)), after[0] if after else None)

    navigation = st.columns([1, 1, 1, 4])
    navigation[0].button("Previous", key=f"{prefix}_previous", shortcut="K", icon=":material/arrow_back:",
                         on_click=_move, args=(prefix, previous), disabled=previous is None, width="stretch")
    navigation[1].button("Next", key=f"{prefix}_next", shortcut="J", icon=":material/arrow_forward:",
                         on_click=_move, args=(prefix, after[0] if after else None), disabled=not after,
                         width="stretch")
    navigation[2].button("Undo", key=f"{prefix}_undo", shortcut="U", icon=":material/undo:", on_click=_undo,
                         args=(workspace, prefix), disabled=not can("review"), width="stretch",
                         help="Takes back your last answer (a bulk answer as a whole)." if can("review")
                         else refusal("review"))
    navigation[3].caption(f"Item {position + 1:,} of {len(shown):,} · keys: J next, K previous, G good, B bad, "
                          "X redact, S skip, U undo")
    show_item(item)
    buttons = st.columns(len(ANSWER_BUTTONS))
    for column, (decision, label, shortcut) in zip(buttons, ANSWER_BUTTONS, strict=True):
        column.button(label, key=f"{prefix}_answer_{decision}", shortcut=shortcut, width="stretch",
                      type="primary" if item.answer_of(reviewer) == decision else "secondary",
                      on_click=_record, args=(workspace, item, decision, prefix, following),
                      disabled=not can("review"), help=None if can("review") else refusal("review"))
    if not can("review"):
        st.caption(escape_markdown(refusal("review")))

    with st.expander(f"Answer all {len(shown):,} items that match the filters"):
        st.selectbox("Answer", ["good", "bad", "redact", "skip"], key=f"{prefix}_bulk_decision")
        st.button(f"Answer all {len(shown):,}", key=f"{prefix}_bulk", on_click=_bulk, args=(workspace, shown, prefix),
                  disabled=not can("review"), help="One action: Undo takes it all back.")
