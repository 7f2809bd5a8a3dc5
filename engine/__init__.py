"""Training Data Studio engine: turns screen captures, git history and docs into fine-tuning data.

The library never imports streamlit; the pages and the CLI (`python -m engine`) call the same functions.
"""

__version__ = "0.1.0"
