"""Training Data Studio: the router. Every page the product has is listed here; pages do one job each.

The pages live in views/, not pages/: Streamlit still auto-discovers a pages/ folder beside the main script, and
on a fresh server a deep link such as /linking then runs that file alone, without this router (no wide layout,
file names instead of titles in the sidebar).
"""

from functools import partial
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="Training Data Studio", page_icon=":material/model_training:", layout="wide")

PAGES = [
    ("views/sources.py", "Sources", ":material/database:",
     "Configure screenpipe, git repositories and docs; check them; extract into the workspace."),
    ("views/linking.py", "Linking", ":material/link:",
     "Link every commit to the screens, conversations and docs that explain it, with a live min_confidence "
     "slider over stored scores, a confidence histogram and a pair browser showing each commit beside its evidence."),
    ("views/validation.py", "Validation", ":material/verified_user:",
     "Validate training pairs: sensitive data, duplicates, quality tiers, a review queue for teammates, and export "
     "of the cleaned dataset."),
    ("views/widgets.py", "Widgets", ":material/widgets:",
     "Build Übersicht widget datasets: download, analyse, write prompts, budget tokens with a keep/exclude/trim "
     "strategy, and create Apple adapter-format sets."),
    ("views/training.py", "Training", ":material/fitness_center:",
     "Train LoRA adapters with mlx-lm from a dataset and a base model, watch the loss live, and deploy, roll back "
     "or canary adapter versions."),
    ("views/compare.py", "Compare", ":material/compare:",
     "Chat with the base model and a fine-tuned adapter side by side, and probe held-out pairs to see whether "
     "fine-tuning helped."),
    ("views/pipeline.py", "Pipeline", ":material/schedule:",
     "Continuous collection: scheduled mining, quality checks and exports, source health and examples per day."),
]


def planned_page(title: str, description: str) -> None:
    """A page the product will have but that is not built yet: say what it will do, show nothing fake."""
    st.title(title)
    st.info(f"Not built yet. This page will: {description}", icon=":material/construction:")


def build_navigation() -> list:
    here = Path(__file__).parent
    pages = []
    for path, title, icon, description in PAGES:
        if (here / path).exists():
            pages.append(st.Page(path, title=title, icon=icon))
        else:
            slug = Path(path).stem
            pages.append(st.Page(partial(planned_page, title, description), title=title, icon=icon, url_path=slug))
    return pages


st.navigation(build_navigation()).run()
