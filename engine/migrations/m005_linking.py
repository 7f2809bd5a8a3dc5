"""Linking: the embedding cache, near-duplicate groups, link runs and their scored links.

Embeddings are keyed by (content hash, model id, chunk): a text is embedded once per model, ever, whatever the run.
Links keep every part of their score so the page can re-filter by min_confidence and top-k from stored numbers.
"""

SQL = """
-- One row per chunk of a text (texts longer than the model's window are split, never cut).
CREATE TABLE embeddings (
    content_hash TEXT NOT NULL,            -- sha1 of the normalized text (engine.knowledge.content_hash)
    model TEXT NOT NULL,                   -- model id: a sentence-transformers id or folder name
    chunk INTEGER NOT NULL,                -- 0, 1, ... in text order
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,                  -- float32, L2-normalized
    PRIMARY KEY (content_hash, model, chunk)
);

-- Near-identical knowledge items (the same screen with a ticking clock) share one representative, which is the
-- only one embedded and linked; every member's source ids stay reachable through this table.
CREATE TABLE knowledge_groups (
    knowledge_id INTEGER PRIMARY KEY REFERENCES knowledge(id) ON DELETE CASCADE,
    representative_id INTEGER NOT NULL,
    signature BLOB                         -- MinHash signature (uint64), so new items are compared without rehashing
);
CREATE INDEX idx_knowledge_groups_representative ON knowledge_groups(representative_id);

CREATE TABLE link_runs (
    id INTEGER PRIMARY KEY,
    mode TEXT NOT NULL,                    -- semantic | hybrid | best
    model TEXT NOT NULL,
    params_json TEXT NOT NULL,             -- the resolved linking settings of the run
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,                  -- running | ok | failed
    stats_json TEXT                        -- counts and timings
);

-- Every candidate above the storage floor, ranked per commit, so a threshold or top-k change is a filter.
CREATE TABLE links (
    run_id INTEGER NOT NULL REFERENCES link_runs(id) ON DELETE CASCADE,
    commit_sha TEXT NOT NULL,
    knowledge_id INTEGER NOT NULL,         -- a group representative
    rank INTEGER NOT NULL,                 -- 1 = best for this commit
    confidence REAL NOT NULL,
    semantic REAL NOT NULL,
    keyword REAL,
    time_score REAL,
    reference REAL,
    evidence_json TEXT,                    -- what matched: shared keywords, references, hours before the commit
    PRIMARY KEY (run_id, commit_sha, knowledge_id)
);
CREATE INDEX idx_links_run_confidence ON links(run_id, confidence);
"""
