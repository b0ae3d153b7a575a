"""Stored file-system names (bytes) as text a terminal or a log line can show."""
from __future__ import annotations


def display(name: bytes) -> str:
    """A stored file-system name as one line of printable text: undecodable bytes as
    \\xNN, control characters (a newline in a name) escaped. --json gives names exactly."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
