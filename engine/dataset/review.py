"""Human review: the answers teammates give on flagged and sampled items, and the one rule that turns them into an
item's status.

An item is anything that can reach training, named by a stable key: a pair's hash (sha1 of its instruction, input
and output), a collected example's content hash, a widget example's content key. Answers are good / bad / skip /
redact, with who and when, appended to `review_decisions` (one transaction per action): every reviewer's answer
counts on its own, a reviewer who answers again replaces only their own answer, and `undo_last` takes back a
reviewer's latest action (a bulk decision is one action). Nothing is last-write-wins across reviewers.

`status_of` is the rule, written once and used by the gate, the quality tiers, exports and every page:
- skip is "not me, not now": it does not count as an answer;
- an owner's settling answer decides the item (that is how a conflict ends, apart from reviewers changing theirs);
- otherwise, when the counted answers disagree the item is in conflict and held;
- when they agree and there are at least `answers_per_item` of them (a workspace setting, 1 by default), the item
  takes that decision; with fewer it is partial and held.
For an item with sensitive findings, `good` keeps it as it is (false alarms), `redact` keeps it with typed
placeholders, `bad` drops it; anything unresolved keeps it out of exports.
"""

from __future__ import annotations

import getpass
import os
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from engine.clock import now_iso
from engine.errors import StudioError
from engine.store import Workspace

DECISIONS = ("good", "bad", "skip", "redact")
ANSWERS = ("good", "bad", "redact")  # the answers that count towards a status (skip does not)
RESOLVING = frozenset(ANSWERS)  # statuses that settle an item's findings: keep, drop or redact
STATES = ("pending", "partial", "conflict", "good", "bad", "redact")
MAX_ANSWERS_PER_ITEM = 10
MAX_GUIDELINES_CHARS = 20_000
_CHUNK = 500


@dataclass(frozen=True)
class Decision:
    """One reviewer's answer on one item."""

    pair_hash: str
    decision: str
    reviewer: str
    decided_at: str
    note: str | None = None
    settles: bool = False


@dataclass(frozen=True)
class ItemStatus:
    """What the answers on one item come to. `decision` is the resolved decision (good / bad / redact) or None
    while the item is pending, partial or in conflict; `answers` holds each reviewer's current answer (skips
    included, so a page can show who passed)."""

    key: str
    state: str
    answers: dict[str, Decision] = field(default_factory=dict)
    needed: int = 1
    settled_by: str | None = None

    @property
    def decision(self) -> str | None:
        return self.state if self.state in RESOLVING else None

    @property
    def counted(self) -> dict[str, str]:
        """reviewer -> answer, skips left out."""
        return {reviewer: answer.decision for reviewer, answer in self.answers.items()
                if answer.decision != "skip" and not answer.settles}

    def answer_of(self, reviewer: str) -> str | None:
        answer = self.answers.get(reviewer)
        return answer.decision if answer else None

    @property
    def label(self) -> str:
        """A short phrase for lists: `good`, `conflict (good / bad)`, `1 of 2 answers`, `pending`."""
        if self.settled_by:
            return f"{self.state}, settled by {self.settled_by}"
        if self.state == "conflict":
            return "conflict (" + " / ".join(sorted(set(self.counted.values()))) + ")"
        if self.state == "partial":
            return f"{len(self.counted)} of {self.needed} answers"
        return self.state


@dataclass(frozen=True)
class QueueEntry:
    pair_hash: str
    pair_index: int
    reason: str  # flagged | sampled
    decision: ItemStatus | None


@dataclass(frozen=True)
class ReviewSettings:
    answers_per_item: int = 1
    guidelines: str = ""


# ------------------------------------------------------------------------------------------------------- the rule

def status_of(key: str, answers: dict[str, Decision], needed: int = 1) -> ItemStatus:
    """THE rule from answers to status (see the module docstring). `answers` maps each reviewer to their current
    answer (settling answers included)."""
    settling = sorted((answer for answer in answers.values() if answer.settles), key=lambda a: a.decided_at)
    if settling:
        last = settling[-1]
        return ItemStatus(key, last.decision if last.decision in RESOLVING else "pending", answers, needed,
                          last.reviewer if last.decision in RESOLVING else None)
    counted = [answer.decision for answer in answers.values() if answer.decision in RESOLVING]
    if not counted:
        return ItemStatus(key, "pending", answers, needed)
    if len(set(counted)) > 1:
        return ItemStatus(key, "conflict", answers, needed)
    if len(counted) < needed:
        return ItemStatus(key, "partial", answers, needed)
    return ItemStatus(key, counted[0], answers, needed)


def findings_action(decision: str | None) -> str:
    """THE rule for an item with sensitive findings, from its resolved decision: `keep` it as it is (good: a false
    alarm), `redact` it (typed placeholders), `drop` it (bad), or `hold` it out of training while unresolved."""
    return {"good": "keep", "redact": "redact", "bad": "drop"}.get(decision or "", "hold")


def unresolved(status: ItemStatus | None) -> bool:
    """Nobody has answered the item, or the answers do not yet come to a decision (partial, in conflict, skipped)."""
    return status is None or status.decision is None


def clears_findings(decision: str | None) -> bool:
    """A good or redact review clears a flagged item for training (and makes it human-reviewed: only that earns
    gold)."""
    return findings_action(decision) in ("keep", "redact")


# ------------------------------------------------------------------------------------------------------ recording

def default_reviewer() -> str:
    """Who is reviewing from the command line or a local (login-free) studio: $STUDIO_REVIEWER, else the login
    name. With logins, the pages use the logged-in identity instead."""
    if os.environ.get("STUDIO_REVIEWER"):
        return os.environ["STUDIO_REVIEWER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _check(decision: str, reviewer: str) -> str:
    if decision not in DECISIONS:
        raise StudioError(f"A review decision is one of {', '.join(DECISIONS)}; got {decision!r}.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise StudioError("A review decision needs the reviewer's name.")
    return reviewer


def _check_key(key: object) -> None:
    if not isinstance(key, str) or len(key) != 40:
        raise StudioError("A review decision needs the item's 40-character hash.")


def record_decision(workspace: Workspace, pair_hash: str, decision: str, reviewer: str, *, dataset: str | None = None,
                    pair_index: int | None = None, note: str | None = None, settles: bool = False) -> Decision:
    """Append one reviewer's answer on one item (its own transaction and its own action for `undo_last`). A
    settling answer (`settles`) is an owner's decision on a conflict; the pages only offer it to owners."""
    reviewer = _check(decision, reviewer)
    _check_key(pair_hash)
    if settles and decision == "skip":
        raise StudioError("Settling an item needs good, bad or redact, not skip.")
    made = Decision(pair_hash, decision, reviewer, now_iso(), note, settles)
    with workspace.transaction() as conn:
        conn.execute(
            "INSERT INTO review_decisions(pair_hash, decision, reviewer, decided_at, dataset, pair_index, note,"
            " batch, settles) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pair_hash, decision, reviewer, made.decided_at, dataset, pair_index, note, secrets.token_hex(8),
             int(settles)),
        )
    return made


def record_bulk(workspace: Workspace, items: Iterable[tuple[str, str | None, int | None]], decision: str,
                reviewer: str, note: str | None = None) -> int:
    """The same answer by one reviewer on many items, (key, dataset, index) each: one transaction and one action
    (one undo takes it all back). Returns how many answers were recorded."""
    reviewer = _check(decision, reviewer)
    rows = []
    batch, now = secrets.token_hex(8), now_iso()
    for key, dataset, index in dict.fromkeys(items):
        _check_key(key)
        rows.append((key, decision, reviewer, now, dataset, index, note, batch))
    if not rows:
        return 0
    with workspace.transaction() as conn:
        conn.executemany(
            "INSERT INTO review_decisions(pair_hash, decision, reviewer, decided_at, dataset, pair_index, note, batch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def undo_last(workspace: Workspace, reviewer: str) -> list[str]:
    """Take back `reviewer`'s latest action that is not undone yet (one answer, or a whole bulk decision): each of
    its items falls back to the answer the reviewer gave before, if any. Returns the keys it touched (empty when
    there is nothing to undo)."""
    reviewer = (reviewer or "").strip()
    with workspace.transaction() as conn:
        row = conn.execute("SELECT id, batch FROM review_decisions WHERE reviewer = ? AND undone_at IS NULL"
                           " ORDER BY id DESC LIMIT 1", (reviewer,)).fetchone()
        if row is None:
            return []
        if row["batch"] is None:  # recorded before actions had batches: one row is one action
            keys = [r[0] for r in conn.execute("SELECT pair_hash FROM review_decisions WHERE id = ?", (row["id"],))]
            conn.execute("UPDATE review_decisions SET undone_at = ? WHERE id = ?", (now_iso(), row["id"]))
            return keys
        keys = [r[0] for r in conn.execute("SELECT pair_hash FROM review_decisions WHERE batch = ? AND reviewer = ?"
                                           " AND undone_at IS NULL ORDER BY id", (row["batch"], reviewer))]
        conn.execute("UPDATE review_decisions SET undone_at = ? WHERE batch = ? AND reviewer = ? AND undone_at IS NULL",
                     (now_iso(), row["batch"], reviewer))
    return keys


# -------------------------------------------------------------------------------------------------------- settings

def review_settings(workspace: Workspace) -> ReviewSettings:
    with workspace.connection() as conn:
        rows = dict(conn.execute("SELECT name, value FROM review_settings").fetchall())
    answers = rows.get("answers_per_item")
    return ReviewSettings(int(answers) if answers and answers.isdigit() else 1, rows.get("guidelines", ""))


def save_review_settings(workspace: Workspace, updated_by: str, *, answers_per_item: int | None = None,
                         guidelines: str | None = None) -> ReviewSettings:
    """Change the answers wanted per item (1 to 10) and/or the guidelines text; kept in the workspace, so every
    page, the CLI and the gate use the same rule."""
    values = {}
    if answers_per_item is not None:
        if isinstance(answers_per_item, bool) or not isinstance(answers_per_item, int) \
                or not 1 <= answers_per_item <= MAX_ANSWERS_PER_ITEM:
            raise StudioError(f"Answers per item is a whole number from 1 to {MAX_ANSWERS_PER_ITEM}; "
                              f"got {answers_per_item!r}.")
        values["answers_per_item"] = str(answers_per_item)
    if guidelines is not None:
        if len(guidelines) > MAX_GUIDELINES_CHARS:
            raise StudioError(f"The guidelines are {len(guidelines):,} characters long; keep them under "
                              f"{MAX_GUIDELINES_CHARS:,}.")
        values["guidelines"] = guidelines
    now = now_iso()
    with workspace.transaction() as conn:
        conn.executemany("INSERT INTO review_settings(name, value, updated_by, updated_at) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by,"
                         " updated_at = excluded.updated_at",
                         [(name, value, updated_by, now) for name, value in values.items()])
    return review_settings(workspace)


# -------------------------------------------------------------------------------------------------------- reading

_CURRENT = ("SELECT d.pair_hash, d.decision, d.reviewer, d.decided_at, d.note, d.settles FROM review_decisions d"
            " JOIN (SELECT MAX(id) AS id FROM review_decisions WHERE undone_at IS NULL {where}"
            " GROUP BY pair_hash, reviewer, settles) last ON last.id = d.id ORDER BY d.id")


def current_answers(workspace: Workspace, keys: list[str] | None = None) -> dict[str, dict[str, Decision]]:
    """Each reviewer's current answer per item (their latest that is not undone; an owner's settling answer is kept
    beside their plain one): {key: {reviewer: Decision}}, settling answers under "<reviewer> (settles)"."""
    with workspace.connection() as conn:
        rows = []
        if keys is None:
            rows = conn.execute(_CURRENT.format(where="")).fetchall()
        else:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                rows.extend(conn.execute(_CURRENT.format(where=f"AND pair_hash IN ({','.join('?' * len(chunk))})"),
                                         chunk).fetchall())
    found: dict[str, dict[str, Decision]] = {}
    for row in rows:
        answer = Decision(row["pair_hash"], row["decision"], row["reviewer"], row["decided_at"], row["note"],
                          bool(row["settles"]))
        slot = f"{answer.reviewer} (settles)" if answer.settles else answer.reviewer
        found.setdefault(answer.pair_hash, {})[slot] = answer
    return found


def item_statuses(workspace: Workspace, keys: list[str] | None = None) -> dict[str, ItemStatus]:
    """The status of every item that has at least one current answer (all items, or only those named), by the
    rule above with the workspace's answers_per_item. An item with no answer is pending and not in the result."""
    needed = review_settings(workspace).answers_per_item
    return {key: status_of(key, answers, needed) for key, answers in current_answers(workspace, keys).items()}


def decision_history(workspace: Workspace, pair_hash: str) -> list[Decision]:
    """Every answer ever recorded on an item, undone ones included, oldest first."""
    with workspace.connection() as conn:
        rows = conn.execute("SELECT pair_hash, decision, reviewer, decided_at, note, settles FROM review_decisions"
                            " WHERE pair_hash = ? ORDER BY id", (pair_hash,)).fetchall()
    return [Decision(row[0], row[1], row[2], row[3], row[4], bool(row[5])) for row in rows]


def count_decisions(workspace: Workspace) -> int:
    with workspace.connection() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM review_decisions").fetchone()[0])


# ------------------------------------------------------------------------------------------------------ agreement

@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers on the items both answered."""

    first: str
    second: str
    items: int
    agreeing: int
    kappa: float | None

    @property
    def percent(self) -> float | None:
        return round(100 * self.agreeing / self.items, 1) if self.items else None


@dataclass(frozen=True)
class Agreement:
    """Agreement over items with at least two counted answers: `percent` of them where every answer is the same;
    `kappa` is Cohen's kappa over the items with exactly two answers (the two reviewers taken in name order, which
    is the textbook two-rater kappa when two people review the same items); `pairs` has it per pair of reviewers.
    A kappa is None when it is undefined (every answer in one category: chance agreement is 1)."""

    items: int
    agreeing: int
    two_answer_items: int
    kappa: float | None
    pairs: list[PairAgreement]

    @property
    def percent(self) -> float | None:
        return round(100 * self.agreeing / self.items, 1) if self.items else None


def cohens_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (rater A, rater B) answers: (p_o - p_e) / (1 - p_e); None when p_e is 1 or there are none."""
    if not pairs:
        return None
    total = len(pairs)
    observed = sum(a == b for a, b in pairs) / total
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[category] * second[category] for category in set(first) | set(second)) / total ** 2
    if expected >= 1.0:
        return None
    return round((observed - expected) / (1 - expected), 4)


def agreement(statuses: Iterable[ItemStatus]) -> Agreement:
    """Agreement between reviewers on the given items (their counted answers; skips and settling answers aside)."""
    items = agreeing = 0
    two: list[tuple[str, str]] = []
    by_pair: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for status in statuses:
        counted = status.counted
        if len(counted) < 2:
            continue
        items += 1
        agreeing += len(set(counted.values())) == 1
        ordered = sorted(counted.items())
        if len(ordered) == 2:
            two.append((ordered[0][1], ordered[1][1]))
        for (first, a), (second, b) in combinations(ordered, 2):
            by_pair.setdefault((first, second), []).append((a, b))
    pairs = [PairAgreement(first, second, len(answers), sum(a == b for a, b in answers), cohens_kappa(answers))
             for (first, second), answers in sorted(by_pair.items())]
    return Agreement(items, agreeing, len(two), cohens_kappa(two), pairs)


# ---------------------------------------------------------------------------------- the JSONL review queue (pairs)

def enqueue(workspace: Workspace, dataset: str, entries: list[tuple[str, int, str]]) -> int:
    """Add (pair_hash, pair_index, reason) entries to a dataset's queue; pairs already queued keep their place
    (their index is refreshed). Returns how many were new."""
    with workspace.transaction() as conn:
        before = conn.execute("SELECT COUNT(*) FROM review_queue WHERE dataset = ?", (dataset,)).fetchone()[0]
        for pair_hash, pair_index, reason in entries:
            conn.execute(
                "INSERT INTO review_queue(dataset, pair_hash, pair_index, reason, added_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(dataset, pair_hash) DO UPDATE SET pair_index = excluded.pair_index,"
                " reason = CASE WHEN excluded.reason = 'flagged' THEN 'flagged' ELSE review_queue.reason END",
                (dataset, pair_hash, pair_index, reason, now_iso()),
            )
        after = conn.execute("SELECT COUNT(*) FROM review_queue WHERE dataset = ?", (dataset,)).fetchone()[0]
    return after - before


def queued_datasets(workspace: Workspace) -> list[str]:
    """The JSONL files (absolute paths) that validation queued pairs from, most recently queued first."""
    with workspace.connection() as conn:
        return [row[0] for row in conn.execute("SELECT dataset FROM review_queue GROUP BY dataset"
                                               " ORDER BY MAX(added_at) DESC")]


def review_queue(workspace: Workspace, dataset: str, pending_only: bool = False) -> list[QueueEntry]:
    """The dataset's queue, flagged pairs first, each with its status (None when nobody answered). With
    `pending_only`, resolved pairs (good / bad / redact) are left out; skipped, partial and conflicting ones stay."""
    with workspace.connection() as conn:
        rows = conn.execute("SELECT pair_hash, pair_index, reason FROM review_queue WHERE dataset = ?"
                            " ORDER BY reason = 'sampled', pair_index", (dataset,)).fetchall()
    statuses = item_statuses(workspace, [row["pair_hash"] for row in rows])
    entries = [QueueEntry(row["pair_hash"], row["pair_index"], row["reason"], statuses.get(row["pair_hash"]))
               for row in rows]
    if pending_only:
        entries = [entry for entry in entries if unresolved(entry.decision)]
    return entries
