"""Scheduler: per-job overrides, the history of every job run, and the state of a running `scheduler start`.

The config file is the user's and is never rewritten: `configure_job` (the API's PUT /api/scheduler/job, the
Pipeline page) stores its changes here and a running scheduler re-reads them. Which process runs a job is decided
by a lock file per job (engine.ops.scheduler); `job_runs.pid` lets a later process tell a run whose process died.
"""

SQL = """
-- Overrides of the config's scheduler.jobs; NULL means "as the config says".
CREATE TABLE job_settings (
    job_id TEXT PRIMARY KEY,               -- mining_code | quality_check | dedup_cleanup | export_training
    enabled INTEGER,                       -- 0 / 1 / NULL
    interval_minutes REAL,                 -- > 0, or NULL
    updated_at TEXT NOT NULL
);

-- One row per run, whatever started it; status goes running -> ok | failed.
CREATE TABLE job_runs (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    trigger TEXT NOT NULL,                 -- schedule | manual | watch | retry
    status TEXT NOT NULL,                  -- running | ok | failed
    attempt INTEGER NOT NULL DEFAULT 1,    -- 1, then 2, 3 ... for retries of a failed run
    started_at TEXT NOT NULL,              -- ISO 8601 UTC
    finished_at TEXT,
    seconds REAL,
    result_json TEXT,                      -- the job's result (counts), when ok
    error TEXT,                            -- one sentence, when failed
    pid INTEGER NOT NULL,                  -- the process that ran it
    log_path TEXT                          -- relative to the workspace: logs/runs/<id>-<job>.log
);
CREATE INDEX idx_job_runs_job ON job_runs(job_id, id);
CREATE INDEX idx_job_runs_status ON job_runs(status);

-- The live `scheduler start` process of this workspace (one row, cleared when it stops).
CREATE TABLE scheduler_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER,
    started_at TEXT,
    heartbeat_at TEXT,
    config_path TEXT,
    watching_json TEXT,                    -- the paths the watcher observes
    next_runs_json TEXT                    -- {job_id: {"next_run_at": iso | null, "retry_at": iso | null}}
);
"""
