"""Domain exceptions. Each message is one plain sentence a user can act on; the CLI prints it as-is."""


class StudioError(Exception):
    """Base class: anything the user can fix (bad config, missing file, wrong input)."""


class ConfigError(StudioError):
    """The pipeline config is malformed, has a wrong type, or names a path that does not exist."""


class SourceError(StudioError):
    """A source (screenpipe database, git repository, document folder) cannot be read as configured."""


class WorkspaceError(StudioError):
    """The workspace folder or its database cannot be used."""


class CollectError(StudioError):
    """Collection cannot run as asked (a missing conversation log, an unknown source, too few examples, ...)."""


def shown_label(value: object, limit: int = 20) -> str:
    """A value from a user's data, as an error may quote it: a short plain word as itself (`'assistent'`), anything
    else only by its type and size, so a secret in the wrong field never reaches an error, a log or a report."""
    import re

    if isinstance(value, str) and re.fullmatch(rf"[A-Za-z][A-Za-z_ -]{{0,{limit - 1}}}", value):
        return repr(value)
    if isinstance(value, str):
        return f"a text of {len(value)} characters"
    return "null" if value is None else f"a {type(value).__name__}"
