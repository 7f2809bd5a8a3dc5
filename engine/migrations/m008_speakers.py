"""The speaker of an audio source row: screenpipe's speakers.id (from 2024-12), NULL when it named no speaker."""

SQL = """
ALTER TABLE knowledge_sources ADD COLUMN speaker_id INTEGER;
"""
