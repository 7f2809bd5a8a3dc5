"""Validation and review: cached sensitive-data scans, validation runs, the review queue, review decisions.

Pairs are identified by `pair_hash` (sha1 of their instruction, input and output), so a decision survives the JSONL
being regenerated or reordered; `dataset` is the absolute path of the JSONL file a run or queue belongs to.
Findings are stored as offsets only: the secret itself is never written to the database.
"""

SQL = """
-- Detector output per text, keyed by content hash and detector version: re-validating costs only new text.
CREATE TABLE sensitive_scans (
    content_hash TEXT NOT NULL,            -- sha1 of the file name the text was scanned as + the text
    detector_version TEXT NOT NULL,
    spans_json TEXT NOT NULL,              -- [[kind, start, end, source], ...]
    PRIMARY KEY (content_hash, detector_version)
);

CREATE TABLE validation_runs (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    pairs INTEGER NOT NULL,
    unresolved_pairs INTEGER NOT NULL,     -- pairs with sensitive findings and no keep/redact/drop decision
    report_json TEXT NOT NULL              -- the report as `python -m engine validate --json` writes it
);
CREATE INDEX idx_validation_runs_dataset ON validation_runs(dataset, id);

-- Pairs waiting for a person: every flagged pair plus a reproducible random sample of the rest.
CREATE TABLE review_queue (
    dataset TEXT NOT NULL,
    pair_hash TEXT NOT NULL,
    pair_index INTEGER NOT NULL,           -- 0-based line of the JSONL when queued
    reason TEXT NOT NULL,                  -- flagged | sampled
    added_at TEXT NOT NULL,
    PRIMARY KEY (dataset, pair_hash)
);

-- Append-only: every decision is a row, the latest per pair counts, so concurrent reviewers never overwrite
-- each other and the history shows who decided what when.
CREATE TABLE review_decisions (
    id INTEGER PRIMARY KEY,
    pair_hash TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('good', 'bad', 'skip', 'redact')),
    reviewer TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    dataset TEXT,
    pair_index INTEGER,
    note TEXT
);
CREATE INDEX idx_review_decisions_pair ON review_decisions(pair_hash, id);
"""
