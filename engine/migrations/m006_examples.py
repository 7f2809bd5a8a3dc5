"""Collected training examples (commit messages, doc sections, conversations, linked pairs) and collect runs.

An example is stored once, keyed by the hash of its training content (never its metadata), so collecting again
adds only what is new. Its tier and score are re-computed by the quality check; near duplicates are marked (not
deleted) by the dedup job, so a report can always say what was left out and why.
"""

SQL = """
CREATE TABLE examples (
    id INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL UNIQUE,     -- instruction pairs: engine.dataset.dedup.pair_hash; others: their content
    source TEXT NOT NULL CHECK (source IN ('commits', 'docs', 'conversations', 'linked')),
    format TEXT NOT NULL CHECK (format IN ('instruction', 'chat', 'completion')),
    origin TEXT NOT NULL,                  -- commit sha, doc path#section, conversation file:line, pair sha:file
    record_json TEXT NOT NULL,             -- the example in its format, with a `metadata` object
    tier TEXT NOT NULL CHECK (tier IN ('gold', 'silver', 'bronze', 'raw')),
    quality_score REAL NOT NULL,
    quality_reasons TEXT NOT NULL DEFAULT '[]',  -- JSON list: demotions, or why it was dropped
    dropped INTEGER NOT NULL DEFAULT 0,    -- 1 when the latest quality check rejects it (e.g. a reviewer said bad)
    tokens INTEGER NOT NULL,
    chars INTEGER NOT NULL,
    sensitive INTEGER NOT NULL DEFAULT 0,  -- sensitive-data findings (secrets, PII): held from export until reviewed
    created_at TEXT NOT NULL,              -- when it was collected, ISO 8601 UTC
    source_time TEXT,                      -- when its source was written (commit time, doc mtime, conversation time)
    checked_at TEXT NOT NULL,              -- last quality check
    duplicate_of INTEGER REFERENCES examples(id),  -- NULL unless the dedup job found a better copy
    human_reviewed INTEGER NOT NULL DEFAULT 0,
    collect_run INTEGER
);
CREATE INDEX idx_examples_created ON examples(created_at);
CREATE INDEX idx_examples_source_tier ON examples(source, tier);
CREATE INDEX idx_examples_origin ON examples(source, origin);
CREATE INDEX idx_examples_duplicate ON examples(duplicate_of);

-- Only finished runs are recorded: a run is one transaction together with the examples it added.
CREATE TABLE collect_runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    sources_json TEXT NOT NULL,            -- the sources asked for
    report_json TEXT NOT NULL              -- CollectResult.to_dict()
);
"""
