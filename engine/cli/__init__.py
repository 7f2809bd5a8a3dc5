"""CLI verbs: each module defines `register(subparsers)` and sets `func` on its parser (see engine/__main__.py)."""
