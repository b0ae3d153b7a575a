"""The exception types the CLI turns into a single line on stderr, and the service into a
JSON error with the status that fits."""


class ImgsearchError(Exception):
    """A failure the user can act on; its message is shown as is, without a traceback.
    `remedy`, when given, is the command that fixes it: the CLI prints it after the problem,
    the service answers with the problem alone (its clients have no command line)."""

    def __init__(self, problem: str, remedy: str | None = None) -> None:
        super().__init__(f"{problem}; {remedy}" if remedy else problem)
        self.problem = problem


class DatabaseError(ImgsearchError):
    """The database failed or could not be reached: nothing about the request was wrong.
    retryable: the server gave up this transaction to break a deadlock or a lock wait;
    the same transaction run again can succeed."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotFoundError(ImgsearchError):
    """What the request names (an image, a stored map) does not exist."""


class BusyError(ImgsearchError):
    """The service has no room for the request now (memory for decoding): try again."""


class TooMuchWork(ImgsearchError):
    """The request asks for more than one request may cost (candidate pairs, seconds):
    narrow it. A client error (422), unlike BusyError: the same request will not pass later."""


class NotKeptError(ImgsearchError):
    """A well-formed request this index cannot answer as it stands: it keeps no k-NN graph,
    no local features or no map of what the request names for it, or the request's fields
    ask for two things that do not go together (the service answers 409)."""


class SkippedFile(ImgsearchError):
    """A file (or an upload) that is no image this tool can use; the message is the reason
    shown to the user (a build counts it and goes on; the service answers 415).

    looked: the build read what the path holds and it is no image it can index (bytes that
    do not decode, an empty file, a folder): a row stored for that path describes what was
    there before, and goes. False where the build could not look (permission, an I/O
    error): the row stays until it can."""

    def __init__(self, reason: str, *, looked: bool = True) -> None:
        super().__init__(reason)
        self.looked = looked
