"""The demo world's story (engine/demo/story.yaml, where its conventions are written), loaded once.

Every top-level key of the YAML is an attribute here (`content.COMMITS`, `content.SCREENS`, ...), so the builder and
the tests read the story the same way.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_STORY: dict = yaml.load(Path(__file__).with_name("story.yaml").read_text(encoding="utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
globals().update(_STORY)
__all__ = sorted(_STORY)
