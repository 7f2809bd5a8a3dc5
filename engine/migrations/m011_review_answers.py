"""Review by several people: each reviewer's answer counts on its own, an undo takes an answer back, an owner can
settle a conflict, and the review settings (answers wanted per item, the guidelines) live in the workspace.

`review_decisions` stays append-only for the answers themselves: an undo only stamps `undone_at` on the rows of
the action it takes back (so history keeps what was answered and undone, and when), `batch` groups the rows of one
action (a bulk decision is one action), and `settles` marks an owner's answer that decides a conflict.
`held_records` keeps the records a gate held back that live nowhere else in the workspace (a widget dataset's held
examples), so a reviewer sees exactly the text that would be trained; it is private to the workspace like
`examples.record_json`.
"""

SQL = """
ALTER TABLE review_decisions ADD COLUMN batch TEXT;
ALTER TABLE review_decisions ADD COLUMN undone_at TEXT;
ALTER TABLE review_decisions ADD COLUMN settles INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_review_decisions_reviewer ON review_decisions(reviewer, id);

CREATE TABLE review_settings (
    name TEXT PRIMARY KEY,                 -- answers_per_item | guidelines
    value TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE held_records (
    key TEXT PRIMARY KEY,                  -- the review key (engine.dataset.gate.content_key)
    source TEXT NOT NULL,                  -- widgets
    dataset TEXT NOT NULL,                 -- where it was held, e.g. widgets:<dataset folder>
    origin TEXT NOT NULL,                  -- the widget id
    record_json TEXT NOT NULL,
    held_at TEXT NOT NULL
);
"""
