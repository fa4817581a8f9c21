"""The one error type users see: a one-line reason naming the file (or field) it concerns."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (model file, domain, data, spec). ``str()`` is one line: ``"<source>: <reason>"``."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.source}: {self.reason}")

    def __reduce__(self):  # picklable, so it crosses process and Ray task boundaries
        return (type(self), (self.source, self.reason))
