"""One object-store interface over a local directory and an S3 prefix (boto3, any S3-compatible server).

Keys are relative to the storage's root, ``/``-separated, and checked by ``keys.safe_key``, so no key built
from user input can leave the root. Every write is atomic: a reader sees the old object, the whole new one,
or nothing — never a partial file under the final name.

A *fingerprint* names one version of an object's bytes, cheaply: on S3 ``etag=…;size=…;modified=…`` (the
ETag, length and Last-Modified second that listings and GETs both return: new bytes change the ETag — an MD5
for plain uploads — and a PUT in a later second changes Last-Modified, so new bytes keep an old fingerprint
only through an MD5 collision uploaded within the same second); on a local directory ``sha256:…`` of the bytes.
"""

from __future__ import annotations

import urllib.parse

from ..errors import InputError
from .base import Storage
from .keys import safe_key, safe_prefix, sha256_bytes
from .local import LocalStorage
from .s3 import S3Storage

__all__ = ["LocalStorage", "S3Storage", "Storage", "open_storage", "safe_key", "safe_prefix",
           "sha256_bytes"]


def open_storage(url: str) -> Storage:
    """``s3://bucket[/prefix]``, ``file:///abs/path`` or a plain local path → the storage rooted there."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        return S3Storage(parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InputError(url, "file URLs must be local: file:///absolute/path")
        return LocalStorage(urllib.parse.unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise InputError(url, f"unsupported storage scheme {parsed.scheme!r} (use s3://, file:// or a path)")
    return LocalStorage(url)
