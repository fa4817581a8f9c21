"""One object-store interface over a local directory and an S3 prefix (boto3, any S3-compatible server).

Keys are relative to the storage's root, ``/``-separated, and checked by :func:`safe_key`, so no key built
from user input can leave the root. Every write is atomic: a reader sees the old object, the whole new one,
or nothing — never a partial file under the final name.

A *fingerprint* names one version of an object's bytes, cheaply: on S3 ``etag=…;size=…;modified=…`` (the
ETag, length and Last-Modified second that listings and GETs both return: new bytes change the ETag — an MD5
for plain uploads — and a PUT in a later second changes Last-Modified, so new bytes keep an old fingerprint
only through an MD5 collision uploaded within the same second); on a local directory ``sha256:…`` of the bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import shutil
import time
import urllib.parse
from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .errors import InputError

LOCAL_FINGERPRINT = "sha256:"
SEGMENT = re.compile(r"[A-Za-z0-9._=+@,-]+")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# How long S3 calls keep retrying while the server cannot be reached (e.g. it is being restarted).
CONNECTION_RETRY_SECONDS = 60.0
T = TypeVar("T")


class KeyNotFound(InputError):
    """The object does not exist (``source`` is its full URL)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "no such object")

    def __reduce__(self):
        return KeyNotFound, (self.source,)  # picklable, e.g. raised inside a Ray task


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
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key (recursively, sorted) that starts with ``prefix`` (a plain string prefix, as in S3)."""

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


@contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A new empty file beside ``path`` (parents created; mode from the umask), removed on exit.
    The ``~`` in its name is never part of a key, so listings skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name[:64]}.{secrets.token_hex(6)}~tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(temp)`` on a temp file beside ``path``, then rename it over ``path``."""
    with _temp_beside(path) as temp:
        write(temp)
        os.replace(temp, path)


def _write_bytes_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class LocalStorage(Storage):
    """Objects are files under ``root``; keys map to relative paths."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / safe_key(key)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(str(path)) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        _write_atomically(self._path(key), lambda temp: _write_bytes_synced(temp, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with _temp_beside(path) as temp:
            _write_bytes_synced(temp, data)
            try:
                os.link(temp, path)  # atomic; fails if the name is taken
                return True
            except FileExistsError:
                return False

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise KeyNotFound(self.url(key))
        return path.stat().st_size

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = safe_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return []
        keys = []
        for directory, _, files in os.walk(start):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and _is_safe(key):  # skips temp files of unfinished writes
                    keys.append(key)
        return sorted(keys)

    def fingerprints(self, keys: list[str]) -> dict[str, str]:
        found = {}
        for key in keys:
            path = self._path(key)
            if path.is_file():
                with open(path, "rb") as handle:
                    found[key] = LOCAL_FINGERPRINT + hashlib.file_digest(handle, "sha256").hexdigest()
        return found

    def download(self, key: str, path: Path | str) -> str:
        source = self._path(key)
        digest = hashlib.sha256()

        def copy(temp: Path) -> None:
            try:
                with open(source, "rb") as reader, open(temp, "wb") as writer:
                    while chunk := reader.read(1 << 20):
                        digest.update(chunk)
                        writer.write(chunk)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise KeyNotFound(str(source)) from None

        _write_atomically(Path(path), copy)
        return LOCAL_FINGERPRINT + digest.hexdigest()

    def upload(self, path: Path | str, key: str) -> None:
        _write_atomically(self._path(key), lambda temp: shutil.copyfile(path, temp))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def child(self, prefix: str) -> "LocalStorage":
        return LocalStorage(self._path(prefix))


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


#: the environment a boto3 client depends on; a client is reused only while these are unchanged
CLIENT_ENVIRONMENT = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


@functools.lru_cache(maxsize=4)
def _s3_client(environment: tuple[tuple[str, str | None], ...]):
    """One boto3 S3 client per process and AWS environment (clients are thread-safe and cost ~0.1 s to make)."""
    import boto3
    from botocore.config import Config

    settings = dict(environment)
    config = Config(retries={"mode": settings["AWS_RETRY_MODE"] or "standard",
                             "max_attempts": int(settings["AWS_MAX_ATTEMPTS"] or "3")},
                    connect_timeout=5, read_timeout=60, s3={"addressing_style": "path"})
    return boto3.session.Session().client("s3", config=config)


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix``. The boto3 client comes from the standard AWS chain
    (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) as it is at first use, is shared by every storage of the
    process with the same environment, and is not pickled, so a storage can be sent to another process. Calls ride over the server being unreachable for up to 60 s.
    """

    def __init__(self, bucket: str, prefix: str = "") -> None:
        if not BUCKET.fullmatch(bucket):
            raise InputError(f"s3://{bucket}", "not a valid bucket name (3-63 of a-z 0-9 . -)")
        self.bucket = bucket
        self.prefix = safe_key(prefix) if prefix else ""
        self._environment: tuple[tuple[str, str | None], ...] | None = None

    def __repr__(self) -> str:
        return f"S3Storage({self.url()!r})"

    def __getstate__(self) -> dict:
        return {"bucket": self.bucket, "prefix": self.prefix}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["bucket"], state["prefix"])

    def _client(self):
        if self._environment is None:  # fixed at first use, like a client made then
            self._environment = tuple((name, os.environ.get(name)) for name in CLIENT_ENVIRONMENT)
        return _s3_client(self._environment)

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, source: str, action: Callable[[], T]) -> T:
        """Run ``action``, retrying while the server is unreachable; S3 errors become one-line InputErrors."""
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        deadline = time.monotonic() + CONNECTION_RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                return action()
            except (ConnectionError, HTTPClientError):
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
            except ClientError as error:
                raise self._error(error, source) from None

    def _error(self, error, source: str) -> Exception:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "NotFound", "404"):
            return KeyNotFound(source)
        if code == "NoSuchBucket":
            return InputError(f"s3://{self.bucket}", "bucket does not exist")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            return InputError(source, f"access denied ({code or status}); check the AWS credentials")
        return error

    def get_bytes(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            return self._client().get_object(Bucket=self.bucket, Key=full)["Body"].read()

        return self._call(self.url(key), read)

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        self._call(self.url(key), lambda: self._client().put_object(Bucket=self.bucket, Key=full, Body=data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Conditional PUT (``If-None-Match: *``). A 412 after a retried request compares the stored content:
        equal content counts as created by this call (the first try may have landed before the reply was lost).
        """
        from botocore.exceptions import ClientError

        full = self._key(key)
        attempts = 0

        def put() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                self._client().put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
                return True
            except ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:
                    raise
                retried = attempts > 1 or error.response["ResponseMetadata"].get("RetryAttempts", 0) > 0
                return retried and self.get_bytes(key) == data

        return self._call(self.url(key), put)

    def exists(self, key: str) -> bool:
        try:
            full = self._key(key)
            self._call(self.url(key), lambda: self._client().head_object(Bucket=self.bucket, Key=full))
            return True
        except KeyNotFound:
            return False

    def size(self, key: str) -> int:
        full = self._key(key)
        head = self._call(self.url(key), lambda: self._client().head_object(Bucket=self.bucket, Key=full))
        return int(head["ContentLength"])

    def list_keys(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        full_prefix = root + safe_prefix(prefix)

        def listing() -> list[str]:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            return [item["Key"][len(root):] for page in pages for item in page.get("Contents", [])
                    if not item["Key"].endswith("/")]

        return sorted(self._call(self.url(), listing))

    def fingerprints(self, keys: list[str]) -> dict[str, str]:
        wanted = {self._key(key): key for key in keys}
        if not wanted:
            return {}
        folder = common_folder(list(wanted))

        def listing() -> dict[str, str]:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
            return {wanted[item["Key"]]: _s3_fingerprint(item["ETag"], item["Size"], item["LastModified"])
                    for page in pages for item in page.get("Contents", []) if item["Key"] in wanted}

        return self._call(self.url(), listing)

    def download(self, key: str, path: Path | str) -> str:
        full = self._key(key)
        fingerprint = ""

        def fetch(temp: Path) -> None:
            def copy() -> None:
                nonlocal fingerprint
                response = self._client().get_object(Bucket=self.bucket, Key=full)
                with open(temp, "wb") as handle:
                    for chunk in response["Body"].iter_chunks(1 << 20):
                        handle.write(chunk)
                fingerprint = _s3_fingerprint(response["ETag"], response["ContentLength"], response["LastModified"])

            self._call(self.url(key), copy)

        _write_atomically(Path(path), fetch)
        return fingerprint

    def upload(self, path: Path | str, key: str) -> None:
        full = self._key(key)

        def put() -> None:
            with open(path, "rb") as handle:
                self._client().put_object(Bucket=self.bucket, Key=full, Body=handle)

        self._call(self.url(key), put)

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call(self.url(key), lambda: self._client().delete_object(Bucket=self.bucket, Key=full))

    def url(self, key: str = "") -> str:
        path = self._key(key) if key else self.prefix
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    def child(self, prefix: str) -> "S3Storage":
        return S3Storage(self.bucket, self._key(prefix))

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (for demos and tests; normally buckets are provisioned)."""
        from botocore.exceptions import ClientError

        def create() -> None:
            try:
                self._client().create_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                                       "BucketAlreadyExists"):
                    raise

        self._call(self.url(), create)


def _s3_fingerprint(etag: str, size: int, modified: datetime) -> str:
    """Listings and GETs give the same string for the same object version (Last-Modified has whole seconds)."""
    return f"etag={etag.strip(chr(34))};size={size};modified={int(modified.timestamp())}"


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
