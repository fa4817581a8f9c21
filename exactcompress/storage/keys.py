"""Keys: ``/``-separated paths relative to a storage root, checked so that no key leaves its root."""

from __future__ import annotations

import hashlib
import os
import re

from ..errors import InputError
from ..schema.common import S3_BUCKET

LOCAL_FINGERPRINT = "sha256:"


SEGMENT = re.compile(r"[A-Za-z0-9._=+@,-]+")


BUCKET = S3_BUCKET


MAX_KEY_BYTES = 1024


MAX_SEGMENT_BYTES = 255


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def safe_key(*parts: str) -> str:
    """Join ``parts`` with ``/`` into a key and check it.

    Every ``/``-separated segment must be non-empty, not ``.`` or ``..``, at most 255 bytes and made of
    ``A-Z a-z 0-9 . _ = + @ , -`` only (so no absolute paths, backslashes, spaces or control characters);
    the key is at most 1024 bytes. Raises InputError naming the key otherwise.
    """
    key = "/".join(parts)
    source = f"key {key!r}"
    if not key:
        raise InputError(source, "empty key")
    if key.startswith("/"):
        raise InputError(source, "absolute keys are not allowed; keys are relative to the storage root")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InputError(source, f"longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if not segment:
            raise InputError(source, "empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InputError(source, f"{segment!r} segments are not allowed")
        if len(segment) > MAX_SEGMENT_BYTES:
            raise InputError(source, f"segment longer than {MAX_SEGMENT_BYTES} bytes")
        if not SEGMENT.fullmatch(segment):
            bad = next(char for char in segment if not SEGMENT.fullmatch(char))
            raise InputError(source, f"character {bad!r} not allowed (use A-Z a-z 0-9 . _ = + @ , -)")
    return key


def safe_prefix(prefix: str) -> str:
    """A listing prefix: ``""``, or a safe key optionally ending in ``/``."""
    if not prefix:
        return ""
    return safe_key(prefix[:-1]) + "/" if prefix.endswith("/") else safe_key(prefix)


def common_folder(keys: list[str]) -> str:
    """The longest ``folder/`` prefix shared by every key (``""`` when they share none)."""
    folder = os.path.commonprefix(keys).rpartition("/")[0]
    return folder + "/" if folder else ""


def _is_safe(key: str) -> bool:
    try:
        safe_key(key)
        return True
    except InputError:
        return False
