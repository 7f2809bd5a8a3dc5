"""What a person reads in a page element whose data went through views.ui.escape_markdown: AppTest hands back the
Markdown source (`mining\\_code finished in 0\\.4 s`), a browser shows `mining_code finished in 0.4 s`."""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def shown(markdown: str) -> str:
    """The text of Markdown source with escape_markdown's escapes and word joiners taken out."""
    return _ESCAPED.sub(r"\1", markdown).replace("\u2060", "")
