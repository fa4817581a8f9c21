"""The storage interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path


class Storage(ABC):
    """Objects under one root (a local directory or an S3 prefix); keys are relative to it."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's content; KeyNotFound if it does not exist."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object, atomically."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if the key is free; True if this call created it, False if it existed."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; KeyNotFound if it does not exist."""

    @abstractmethod
    def list_keys(self, prefix: str = "", *, unsafe: bool = False) -> list[str]:
        """Every key (recursively, sorted) that starts with ``prefix`` (a plain string prefix, as in S3) and
        that ``safe_key`` accepts; with ``unsafe`` the names it refuses too (so that a caller can name them),
        never the temporary files of unfinished writes."""

    @abstractmethod
    def fingerprints(self, keys: list[str]) -> dict[str, str]:
        """The fingerprint of each of ``keys`` that exists (missing keys are left out). S3: one listing of the
        keys' common folder, no reads; local: reads each file."""

    @abstractmethod
    def download(self, key: str, path: Path | str) -> str:
        """Copy the object to a local file (replaced atomically) and return the fingerprint of the bytes
        copied; KeyNotFound if it does not exist."""

    @abstractmethod
    def upload(self, path: Path | str, key: str) -> None:
        """Create or replace the object with a local file's content, atomically."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it does not exist."""

    @abstractmethod
    def url(self, key: str = "") -> str:
        """Full location of ``key`` (or of the root) for messages and reports: ``s3://...`` or a file path."""

    @abstractmethod
    def child(self, prefix: str) -> "Storage":
        """The storage rooted at ``prefix`` under this one."""
