"""Domain exceptions. Each message is one plain sentence a user can act on; the CLI prints it as-is."""


class StudioError(Exception):
    """Base class: anything the user can fix (bad config, missing file, wrong input)."""


class ConfigError(StudioError):
    """The pipeline config is malformed, has a wrong type, or names a path that does not exist."""


class SourceError(StudioError):
    """A source (screenpipe database, git repository, document folder) cannot be read as configured."""


class WorkspaceError(StudioError):
    """The workspace folder or its database cannot be used."""
