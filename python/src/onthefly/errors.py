"""One exception class per result code of the C ABI, under one base class.

Each carries the library's message (``str(e)``) and its code (``e.code``).
Where a built-in exception means the same, the class derives from it too
(``InvalidArgumentError`` is a ``ValueError``, ``IoError`` an ``OSError``),
so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations

import builtins


class OnTheFlyError(Exception):
    """A call into the library failed; ``code`` is its ``OTF_RESULT_*`` value."""

    code: int = -1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NullParameterError(OnTheFlyError, TypeError):
    """A required argument was None."""

    code = 1


class InvalidUtf8Error(OnTheFlyError, ValueError):
    """A string argument was not valid UTF-8 (a lone surrogate)."""

    code = 2


class InvalidArgumentError(OnTheFlyError, ValueError):
    """An argument was refused: out of range, NaN, too long, empty, of the wrong kind."""

    code = 3


class InvalidConfigError(OnTheFlyError, ValueError):
    """The configuration was refused, or its ``data_dir`` is in use by another instance."""

    code = 4


class NotInitializedError(OnTheFlyError, RuntimeError):
    """A global function was called before ``initialize_online_training``."""

    code = 5


class AlreadyInitializedError(OnTheFlyError, RuntimeError):
    """``initialize_online_training`` was called before with another configuration."""

    code = 6


class ShutDownError(OnTheFlyError, RuntimeError):
    """The training system was shut down and takes nothing more."""

    code = 7


class NoModelError(OnTheFlyError, LookupError):
    """The agent has no trained model for this task yet."""

    code = 9


class UnknownAgentError(NoModelError):
    """No example was ever added for this agent (so it has no model either)."""

    code = 8


class StoreError(OnTheFlyError):
    """The store (PostgreSQL or SQLite) failed or could not be opened."""

    code = 10


class ModelError(OnTheFlyError):
    """A model failed (a libtorch error, a user model's error)."""

    code = 11


class CheckpointError(OnTheFlyError):
    """A checkpoint could not be read or written (an unknown version, a damaged file)."""

    code = 12


class TimeoutError(OnTheFlyError, builtins.TimeoutError):
    """A wait (flush, idle) ended before the work did."""

    code = 13


class InternalError(OnTheFlyError):
    """Something else failed inside the library (a thread could not start)."""

    code = 14


class PanicError(OnTheFlyError):
    """The library panicked; the panic was caught."""

    code = 15


class IoError(OnTheFlyError, OSError):
    """A file the caller named could not be written."""

    code = 16


class ForkedProcessError(OnTheFlyError, RuntimeError):
    """This process was forked from the one that started the training system
    (``multiprocessing``'s default "fork" start method on Linux, a
    pre-forking server): its threads did not survive the fork, so nothing
    given here would be learned. Start it in each worker instead (the
    "spawn" or "forkserver" start method, or initialise after forking)."""

    code = 17


_BY_CODE = {
    cls.code: cls
    for cls in (
        NullParameterError,
        InvalidUtf8Error,
        InvalidArgumentError,
        InvalidConfigError,
        NotInitializedError,
        AlreadyInitializedError,
        ShutDownError,
        UnknownAgentError,
        NoModelError,
        StoreError,
        ModelError,
        CheckpointError,
        TimeoutError,
        InternalError,
        PanicError,
        IoError,
        ForkedProcessError,
    )
}


def error_for(code: int, message: str) -> OnTheFlyError:
    """The exception of a result code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        error = OnTheFlyError(f"{message} (unknown result code {code})")
        error.code = code
        return error
    return cls(message)
