"""The one exception type the CLI turns into a single line on stderr."""


class ImgsearchError(Exception):
    """A failure the user can act on; its message is shown as is, without a traceback."""
