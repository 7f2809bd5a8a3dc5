"""A training run's phase (converting, loading, training, evaluating, ...) beside its status, and when its adapter
became usable: the adapter is offered for chat as soon as training saved it, while its evaluation still runs."""

SQL = """
ALTER TABLE training_runs ADD COLUMN phase TEXT;
ALTER TABLE training_runs ADD COLUMN usable_at TEXT;
"""
