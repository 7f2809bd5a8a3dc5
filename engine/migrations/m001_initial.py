"""Knowledge items (deduplicated by normalized text), their source ids, commits, file changes, watermarks."""

SQL = """
CREATE TABLE knowledge (
    id INTEGER PRIMARY KEY,
    knowledge_type TEXT NOT NULL,          -- ocr | audio | ui | document
    content_hash TEXT NOT NULL,            -- sha1 of the normalized text
    text TEXT NOT NULL,
    timestamp TEXT,                        -- earliest capture, ISO 8601 UTC
    last_timestamp TEXT,                   -- latest capture, ISO 8601 UTC
    app_name TEXT,
    window_name TEXT,
    browser_url TEXT,
    source_count INTEGER NOT NULL DEFAULT 1,
    UNIQUE (knowledge_type, content_hash)
);
CREATE INDEX idx_knowledge_timestamp ON knowledge(timestamp);

-- Every source row a knowledge item was seen in: ocr:<frames.id>, audio:<id>, ui:<table>:<id>, doc:<path>
CREATE TABLE knowledge_sources (
    source_id TEXT PRIMARY KEY,
    knowledge_id INTEGER NOT NULL REFERENCES knowledge(id) ON DELETE CASCADE,
    timestamp TEXT,
    app_name TEXT,
    window_name TEXT
);
CREATE INDEX idx_knowledge_sources_knowledge ON knowledge_sources(knowledge_id);

CREATE TABLE commits (
    sha TEXT PRIMARY KEY,
    repo TEXT NOT NULL,                    -- absolute path of the repository
    message TEXT NOT NULL,
    author TEXT,
    timestamp TEXT NOT NULL,               -- committed date, ISO 8601 UTC
    files_total INTEGER NOT NULL DEFAULT 0 -- code files kept for this commit
);
CREATE INDEX idx_commits_timestamp ON commits(timestamp);

CREATE TABLE file_changes (
    commit_sha TEXT NOT NULL REFERENCES commits(sha) ON DELETE CASCADE,
    path TEXT NOT NULL,
    old_path TEXT,                         -- set on renames
    change_type TEXT NOT NULL,             -- A | M | D | R
    added_lines INTEGER NOT NULL,
    removed_lines INTEGER NOT NULL,
    added_code TEXT NOT NULL,              -- the added lines, without the leading '+'
    diff TEXT NOT NULL,                    -- the whole unified diff of this file
    PRIMARY KEY (commit_sha, path)
);

-- Incremental reading: last frame id / audio id / commit sha per source
CREATE TABLE watermarks (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE extract_runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,                  -- running | ok | failed
    report_json TEXT
);
"""
