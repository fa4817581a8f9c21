"""Storage under an S3 prefix through boto3 (any S3-compatible server): standard AWS chain, path-style
addressing, conditional puts, and calls that ride over an unreachable or failing server for a while."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import InputError, KeyNotFound, StorageError, StorageUnavailable
from .base import Storage
from .files import TEMP_SUFFIX, write_atomically
from .keys import BUCKET, _is_safe, common_folder, safe_key, safe_prefix

# How long S3 calls keep retrying while the server cannot be reached or answers with a transient server error
# (e.g. it is being restarted, or a just-restarted server has not registered its volumes yet);
# EXACTCOMPRESS_STORAGE_RETRY_S overrides it (it reaches Ray workers started from this environment).
CONNECTION_RETRY_SECONDS = float(os.environ.get("EXACTCOMPRESS_STORAGE_RETRY_S", "60"))
#: seconds between the warnings logged while a call retries
RETRY_WARNING_SECONDS = 10.0
LOG = logging.getLogger(__name__)


T = TypeVar("T")

#: S3 error codes that say "try again later" (besides any HTTP 5xx status): retried like an unreachable server
TRANSIENT_ERROR_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                                   "RequestTimeTooSkewed", "Throttling", "ThrottlingException"})


#: S3 error codes of a request these credentials may not make (besides any HTTP 403 status)
DENIED_ERROR_CODES = frozenset({"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


def _code_and_status(error) -> tuple[str, int]:
    """A botocore ``ClientError``'s error code ("" if none) and HTTP status (0 if none)."""
    return (error.response.get("Error", {}).get("Code", ""),
            int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0))


def _is_transient(error) -> bool:
    """Whether a botocore ``ClientError`` is the server's passing trouble (5xx or throttling), not the request's."""
    code, status = _code_and_status(error)
    return code in TRANSIENT_ERROR_CODES or 500 <= status < 600


def _is_denied(error) -> bool:
    """Whether a botocore ``ClientError`` refuses these credentials (HTTP 403 or a code saying so)."""
    code, status = _code_and_status(error)
    return code in DENIED_ERROR_CODES or status == 403


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
    process with the same environment, and is not pickled, so a storage can be sent to another process. Calls
    ride over the server being unreachable or answering 5xx/throttling errors for up to 60 s.
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
        """The shared client; InputError (one line) when the AWS environment cannot make one (an endpoint without
        a scheme, ``AWS_MAX_ATTEMPTS=three``, an unknown ``AWS_RETRY_MODE``, a key id without its secret)."""
        from botocore.exceptions import BotoCoreError

        if self._environment is None:  # fixed at first use, like a client made then
            self._environment = tuple((name, os.environ.get(name)) for name in CLIENT_ENVIRONMENT)
        try:
            return _s3_client(self._environment)
        except (ValueError, BotoCoreError) as error:
            raise InputError("AWS environment", f"cannot make an S3 client for {self.url()}: {error}") from None

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, source: str, action: Callable[[], T]) -> T:
        """Run ``action``, retrying while the server is unreachable or answers with a transient error (5xx,
        throttling) after boto3's own retries, for up to ``CONNECTION_RETRY_SECONDS`` in all.

        Raises ``StorageUnavailable`` when that lasts, ``KeyNotFound`` for a missing object,
        ``InputError`` for a missing bucket, denied access or missing credentials, ``StorageError`` for any
        other S3 error; each one line naming ``source``.
        """
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
        )

        deadline = time.monotonic() + CONNECTION_RETRY_SECONDS
        delay, attempt, next_warning = 0.25, 0, time.monotonic()
        while True:
            try:
                return action()
            except NoCredentialsError:
                raise InputError(source, "no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                                 "or a profile (AWS_PROFILE)") from None
            except ClientError as error:
                if not _is_transient(error):
                    raise self._error(error, source) from None
                trouble = f"the storage server at {self._endpoint()} keeps failing"
                failure = error
            except (ConnectionError, HTTPClientError, IncompleteReadError) as error:  # a body cut off too
                trouble = f"cannot reach the storage server at {self._endpoint()}"
                failure = error
            attempt += 1
            if time.monotonic() + delay > deadline:
                raise StorageUnavailable(source, f"{trouble} (retried for {CONNECTION_RETRY_SECONDS:.0f} s): "
                                         f"{failure}") from None
            if time.monotonic() >= next_warning:  # one line now and then while it retries
                LOG.warning("%s, retrying (attempt %d; %.0f s left): %s", trouble, attempt,
                            deadline - time.monotonic(), failure)
                next_warning = time.monotonic() + RETRY_WARNING_SECONDS
            time.sleep(delay)
            delay = min(2 * delay, 1.0)

    def _endpoint(self) -> str:
        return self._client().meta.endpoint_url

    def _error(self, error, source: str) -> Exception:
        """The one-line error for a botocore ``ClientError``."""
        code, status = _code_and_status(error)
        if code in ("NoSuchKey", "NotFound", "404"):
            return KeyNotFound(source)
        if code == "NoSuchBucket":
            return InputError(f"s3://{self.bucket}", "bucket does not exist")
        if _is_denied(error):
            return InputError(source, f"access denied ({code or status}); check the AWS credentials")
        return StorageError(source, f"S3 error {code or status}: {error}")

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
                if _code_and_status(error)[1] != 412:
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

    def list_keys(self, prefix: str = "", *, unsafe: bool = False) -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        full_prefix = root + safe_prefix(prefix)

        def listing() -> list[str]:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            return [item["Key"][len(root):] for page in pages for item in page.get("Contents", [])
                    if not item["Key"].endswith("/") and (unsafe or _is_safe(item["Key"][len(root):]))]

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

        write_atomically(Path(path), fetch)
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

    def bucket_problem(self) -> str | None:
        """Why this storage's bucket cannot take a job's files: it does not exist at the endpoint, or these
        credentials may not reach it; None when it can. One HEAD request on the bucket, so nothing is written
        (and it needs no permission beyond ``s3:ListBucket``, which a job needs anyway: without it S3 answers
        a HEAD of a missing object with 403, not 404). Raises as any call does: ``StorageUnavailable`` for a
        server still unreachable after the retries, ``InputError`` for missing credentials or an AWS
        environment that cannot make a client, ``StorageError`` for another S3 error."""
        from botocore.exceptions import ClientError

        def head() -> str | None:
            try:
                self._client().head_bucket(Bucket=self.bucket)
                return None
            except ClientError as error:  # a HEAD answer has no body: the code is the HTTP status
                code, status = _code_and_status(error)
                if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
                    return f"bucket {self.bucket!r} does not exist at {self._endpoint()}"
                if _is_denied(error):
                    return (f"bucket {self.bucket!r} is not accessible with these credentials at "
                            f"{self._endpoint()} (HTTP 403; check the AWS credentials)")
                raise  # transient ones are retried by _call, the rest become one line there

        return self._call(self.url(), head)

    def write_problem(self) -> str | None:
        """Why these credentials cannot write and delete objects under this storage's prefix; None when they can.
        A job needs both: it writes its results and removes its leases. One PUT and one DELETE of an empty probe
        object ``.exactcompress-probe.<random>~tmp`` at the prefix (a ``~`` is never part of a key, so listings
        skip it while it exists). Raises as ``bucket_problem`` does."""
        from botocore.exceptions import ClientError

        probe = f".exactcompress-probe.{secrets.token_hex(6)}{TEMP_SUFFIX}"  # not a key: built here, not by _key
        full = f"{self.prefix}/{probe}" if self.prefix else probe
        probe_url = f"s3://{self.bucket}/{full}"

        def denied(action: str, call: Callable[[], object], after: str = "") -> Callable[[], str | None]:
            def attempt() -> str | None:
                try:
                    call()
                    return None
                except ClientError as error:
                    if _is_denied(error):
                        code, status = _code_and_status(error)
                        return (f"{action} with these credentials at {self._endpoint()} (HTTP 403, {code or status})"
                                f"{after}")
                    raise  # transient ones are retried by _call, the rest become one line there

            return attempt

        written = self._call(probe_url, denied(
            f"{self.url()} cannot be written: the job writes its results there, but a PUT was refused",
            lambda: self._client().put_object(Bucket=self.bucket, Key=full, Body=b"")))
        return written or self._call(probe_url, denied(
            f"objects under {self.url()} cannot be deleted: the job removes its leases, but a DELETE was refused",
            lambda: self._client().delete_object(Bucket=self.bucket, Key=full),
            f"; its probe {probe_url} is left there"))

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
