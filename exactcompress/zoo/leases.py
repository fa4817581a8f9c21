"""Leases: which run is compressing a model right now, so two incremental runs on one output never both do it.

A lease is the object ``leases/<sha16>/<run folder>.json`` (a ``Lease``), beside the folder
``runs/<sha16>/<run folder>/`` it guards. A run takes it before analysing the model and deletes it once the
model's report is committed (or the analysis raised):

- no lease: ``put_if_absent`` creates it; of several runs exactly one wins;
- a lease of this run (a Ray retry of the same task): renewed;
- a live lease of another run (``expires_at`` ahead of this node's clock): the model is left alone, "in
  progress elsewhere" (not a failure);
- an expired (or unreadable) lease, or any lease of another run when this run takes over leases
  (``zoo run --incremental --take-over-leases``, after a run was killed): the run first claims *that* lease, ``put_if_absent`` of
  ``<lease key>.takeover-<hash of its bytes>``; only the claim's winner deletes it and creates its own lease
  (``put_if_absent`` again), so runs that see the same expired lease take it over once.

Race windows, each costing duplicate work at most — never a wrong or doubled result, because a model's
``report.json`` is committed with ``put_if_absent`` and every run summarises the one committed report:
releasing reads the lease, then deletes it (a lease that expired in between and was taken over is deleted
too); claims are deleted on release, so a run that read the old lease and stalled for a whole analysis
before claiming could take over again; expiry compares the clocks of different nodes (the default duration,
2 × the time limit + 10 min, dwarfs normal skew).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from pydantic import ValidationError

from ..errors import KeyNotFound
from ..schema import Lease, ZooJobSpec
from ..storage import Storage, safe_key, sha256_bytes

LEASE_MARGIN_SECONDS = 600.0
UNLIMITED_LEASE_SECONDS = 24 * 3600.0
TAKEOVER = ".takeover-"


@dataclass(frozen=True)
class LeaseTerms:
    """Who takes leases (one random id per run), for how many seconds, and whether other runs' live leases
    count as expired (``take_over``: for an operator who knows that the run holding them is dead)."""

    holder: str
    seconds: float
    take_over: bool = False


def lease_terms(spec: ZooJobSpec, holder: str, take_over: bool = False) -> LeaseTerms:
    """``spec.lease_s``, else 2 × ``time_limit_s`` + 600 s, else 24 h."""
    if spec.lease_s is not None:
        return LeaseTerms(holder, spec.lease_s, take_over)
    if spec.time_limit_s is not None:
        return LeaseTerms(holder, 2 * spec.time_limit_s + LEASE_MARGIN_SECONDS, take_over)
    return LeaseTerms(holder, UNLIMITED_LEASE_SECONDS, take_over)


def lease_key(run_prefix: str) -> str:
    """``runs/<sha16>/<run folder>`` → ``leases/<sha16>/<run folder>.json``."""
    return safe_key("leases", *run_prefix.split("/")[1:]) + ".json"


def read_lease(storage: Storage, key: str) -> Lease | None:
    """The lease at ``key``; None if there is none or it does not validate."""
    try:
        return Lease.model_validate_json(storage.get_bytes(key))
    except (KeyNotFound, ValidationError):
        return None


def acquire(storage: Storage, key: str, sha256: str, terms: LeaseTerms) -> bool:
    """Take the lease at ``key`` for ``terms.holder`` until now + ``terms.seconds``; True if this run holds it."""
    mine = Lease(holder=terms.holder, sha256=sha256, expires_at=time.time() + terms.seconds)
    data = mine.model_dump_json().encode()
    if storage.put_if_absent(key, data):
        return True
    try:
        current = storage.get_bytes(key)
    except KeyNotFound:  # released in between
        return storage.put_if_absent(key, data)
    try:
        lease: Lease | None = Lease.model_validate_json(current)
    except ValidationError:
        lease = None  # unreadable: taken over like an expired one
    if lease is not None and lease.holder == terms.holder:
        storage.put_bytes(key, data)
        return True
    if lease is not None and lease.expires_at > time.time() and not terms.take_over:
        return False
    if not storage.put_if_absent(f"{key}{TAKEOVER}{sha256_bytes(current)[:16]}", data):
        return False  # another run claimed this expired lease first
    storage.delete(key)
    return storage.put_if_absent(key, data)


def release(storage: Storage, key: str, holder: str) -> None:
    """Delete the lease at ``key`` if ``holder`` holds it, and any takeover claims of it."""
    lease = read_lease(storage, key)
    if lease is not None and lease.holder == holder:
        storage.delete(key)
    for claim in storage.list_keys(key + TAKEOVER):
        storage.delete(claim)


@contextmanager
def holding(storage: Storage, key: str, sha256: str, terms: LeaseTerms) -> Iterator[bool]:
    """Try to take the lease; yield whether this run holds it; release it on exit (also on errors)."""
    held = acquire(storage, key, sha256, terms)
    try:
        yield held
    finally:
        if held:
            release(storage, key, terms.holder)
