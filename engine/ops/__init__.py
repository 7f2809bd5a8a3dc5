"""Operations over a workspace while it keeps growing: statistics (stats.py), the scheduler and its jobs
(scheduler.py, jobs.py), the watcher that triggers incremental mining (watcher.py) and the REST API (api/, one
router per resource)."""
