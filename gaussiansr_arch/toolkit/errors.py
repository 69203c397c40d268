"""The one user-facing error type of the tools and the library they share."""


class ToolError(Exception):
    """A user-facing error: the message is one line and names the file/key/value at fault."""
