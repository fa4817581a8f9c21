"""The errors users see, each a one-line reason naming the file, field or URL it concerns, and exit codes.

Every error here is an ``ExactCompressError``: ``str()`` is ``"<source>: <reason>"`` on one line, and
``exit_code`` is what the command line exits with when it ends a command. They pickle, so they cross
process and Ray task boundaries unchanged.

| error | meaning | exit code |
| --- | --- | --- |
| ``InputError`` | bad user input: a model file, domain, data, spec field or flag | 2 (usage) |
| ``KeyNotFound`` | an object named by the user does not exist in storage | 2 (usage) |
| ``StorageError`` | storage failed in a way that is not the input's fault | 1 |
| ``StorageUnavailable`` | the storage server could not be reached, even after retries | 2 (usage) |
| ``SolverError`` | SCIP failed or ended in a state whose bounds cannot be trusted | 1 |
| ``SoundnessError`` | a proof and a witness contradict each other: a bug, never a result | 1 |

A model that fails inside a zoo job is not an exception: its report says ``failed`` and why.
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import IntEnum
from typing import Iterator


class ExitCode(IntEnum):
    """Exit codes of every ``exactcompress`` command."""

    OK = 0  # every model exact or partial
    FAILED = 1  # the model (or the command's own work) failed; one line says why
    USAGE = 2  # bad flags, spec, input files or storage locations: nothing was analysed
    PARTIAL_FAILURE = 3  # a zoo job or study finished, but some models failed (each report says why)


class ExactCompressError(Exception):
    """Base class. ``str()`` is one line: ``"<source>: <reason>"``."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.source}: {self.reason}")

    def __reduce__(self):  # picklable with its arguments, e.g. raised inside a Ray task
        return (type(self), (self.source, self.reason))


def described(error: BaseException) -> str:
    """``"<type>: <message>"`` of an unexpected exception, its message on one line: the reason given for an
    internal error (a bug of this package or of a library it calls)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class InputError(ExactCompressError, ValueError):
    """Bad user input (model file, domain, data, spec, flag)."""

    exit_code = ExitCode.USAGE


class KeyNotFound(ExactCompressError, LookupError):
    """The object at ``source`` (its full URL) does not exist."""

    exit_code = ExitCode.USAGE

    def __init__(self, source: str, reason: str = "no such object") -> None:
        super().__init__(source, reason)


class StorageError(ExactCompressError):
    """Storage failed for a reason other than the input (a server error, a refused request)."""


class StorageUnavailable(StorageError, ConnectionError):
    """The storage server could not be reached within the retry window (a wrong endpoint, or a server down)."""

    exit_code = ExitCode.USAGE


class SolverError(ExactCompressError, RuntimeError):
    """SCIP failed, or ended with a status after which no bound can be trusted; nothing was claimed."""


class SoundnessError(ExactCompressError, RuntimeError):
    """A neuron is both proven stable and witnessed unstable: a bug in a proof, never a result to keep."""


@contextmanager
def naming_field(spec_file: str, field: str) -> Iterator[None]:
    """Re-raise an ``ExactCompressError`` of the body as ``"<spec_file>: field '<field>': <its line>"``, of its own
    kind (the field's name is not repeated where the error already names it as its source): how an up-front check
    of a spec says which file and field are wrong."""
    try:
        yield
    except ExactCompressError as error:
        line = error.reason if error.source == field else str(error)
        raise type(error)(spec_file, f"field '{field}': {line}") from None
