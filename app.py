"""Training Data Studio: the router. Every page the product has is listed here; pages do one job each.

The pages live in views/, not pages/: Streamlit still auto-discovers a pages/ folder beside the main script, and
on a fresh server a deep link such as /linking then runs that file alone, without this router (no wide layout,
file names instead of titles in the sidebar).
"""

import streamlit as st

from views.access import require_member

# An emoji favicon is drawn by the browser itself; a :material/...: one would be fetched from a font CDN, and the
# studio works offline.
st.set_page_config(page_title="Training Data Studio", page_icon="🧪", layout="wide")
require_member()  # team mode: log in first; someone without a role in the config gets nothing

PAGES = [
    ("views/sources.py", "Sources", ":material/database:"),  # configure and check sources; extract
    ("views/linking.py", "Linking", ":material/link:"),  # commits to knowledge, live min_confidence, pair browser
    ("views/validation.py", "Validation", ":material/verified_user:"),  # secrets, tiers, the file's review, export
    ("views/review.py", "Review", ":material/rate_review:"),  # one queue over every source, answers, agreement
    ("views/widgets.py", "Widgets", ":material/widgets:"),  # Übersicht widget datasets and token budgets
    ("views/training.py", "Training", ":material/fitness_center:"),  # LoRA runs, live loss, adapter versions
    ("views/compare.py", "Compare", ":material/compare:"),  # base vs fine-tuned chat, held-out probe
    ("views/pipeline.py", "Pipeline", ":material/schedule:"),  # scheduled collection, stats, source health, jobs
]

st.navigation([st.Page(path, title=title, icon=icon) for path, title, icon in PAGES]).run()
