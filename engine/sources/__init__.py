"""Readers: each yields records from one kind of source and never writes to it."""
