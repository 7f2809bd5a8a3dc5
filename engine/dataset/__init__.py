"""Dataset stages: pairs, dedup, sensitive data, quality, token counts, split, export, validation."""
