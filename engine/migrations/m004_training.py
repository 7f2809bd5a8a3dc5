"""Training runs and their loss reports, deployed adapter versions, the deployment pointer and canary traffic."""

SQL = """
CREATE TABLE training_runs (
    id TEXT PRIMARY KEY,                   -- 20261125-163000-1a2b: sortable by start time
    status TEXT NOT NULL,                  -- queued | running | completed | failed | stopped
    data_dir TEXT NOT NULL,
    base_model TEXT NOT NULL,              -- what the user asked for: default alias, hub id or folder
    model_path TEXT,                       -- the folder mlx-lm loaded
    preset TEXT,
    config_json TEXT NOT NULL,             -- the resolved config, also saved as runs/<id>/config.json
    train_samples INTEGER NOT NULL,
    valid_samples INTEGER NOT NULL,
    test_samples INTEGER NOT NULL,
    pid INTEGER,
    pid_started REAL,                      -- process start time, so a reused pid is never mistaken for the run
    blas TEXT,                             -- OpenBLAS library preloaded into the worker, or NULL
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    train_seconds REAL,
    iterations_done INTEGER NOT NULL DEFAULT 0,
    final_train_loss REAL,
    final_val_loss REAL,
    tokens_per_second REAL,                -- mean over the run's reports
    peak_memory_gb REAL,
    adapter_files_json TEXT,               -- [{"name", "bytes", "sha256"}]
    evaluation_json TEXT,                  -- sanity, generation, losses against the base model
    error TEXT,                            -- one sentence
    log_tail TEXT                          -- the last lines of the run's log when it failed or stopped
);
CREATE INDEX idx_training_runs_created ON training_runs(created_at);

CREATE TABLE training_metrics (
    run_id TEXT NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                    -- train | val
    iteration INTEGER NOT NULL,
    loss REAL NOT NULL,
    learning_rate REAL,
    tokens_per_second REAL,
    iterations_per_second REAL,
    trained_tokens INTEGER,
    peak_memory_gb REAL,
    seconds REAL,                          -- since the training loop started
    PRIMARY KEY (run_id, kind, iteration)
);

CREATE TABLE adapter_versions (
    version INTEGER PRIMARY KEY,           -- shown as v1, v2, ...
    run_id TEXT REFERENCES training_runs(id) ON DELETE SET NULL,
    base_model TEXT NOT NULL,
    model_path TEXT,
    adapter_dir TEXT NOT NULL,             -- versions/v<N>/adapters, relative to the workspace
    checksum TEXT NOT NULL,                -- sha256 over the sorted file manifest
    files_json TEXT NOT NULL,              -- [{"name", "bytes", "sha256"}]
    metrics_json TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,                  -- active | canary | retired | rolled_back | rejected
    created_at TEXT NOT NULL,
    deployed_at TEXT
);

-- One row: what is served now. current_version NULL means the base model alone.
CREATE TABLE deployment_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    current_version INTEGER REFERENCES adapter_versions(version),
    canary_version INTEGER REFERENCES adapter_versions(version),
    canary_share REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
INSERT INTO deployment_state(id, current_version, canary_version, canary_share, updated_at)
VALUES (1, NULL, NULL, 0, strftime('%Y-%m-%dT%H:%M:%fZ','now'));

CREATE TABLE deployment_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,                  -- deploy | rollback | auto_rollback | canary | promote | reject
    version INTEGER,
    previous_version INTEGER,
    detail TEXT
);

-- Requests served while a canary runs: which version answered and whether it failed.
CREATE TABLE canary_requests (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    version INTEGER,                       -- NULL: the base model
    role TEXT NOT NULL,                    -- current | canary
    ok INTEGER NOT NULL DEFAULT 1,
    latency_ms REAL
);
"""
