"""Numbered workspace migrations: mNNN_<name>.py, each defining SQL. Applied in order by engine.store."""
