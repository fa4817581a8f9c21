"""The ledger of incremental zoo runs: which versions of which source models are done under which settings.

Under the job's ``output`` prefix:

    ledger/<sha256>/<entry id>.json   one LedgerEntry per fact "this source object version has this committed
                                      report" (the id hashes report key, source key and source fingerprint)
    ledger.json                       ZooLedger: every entry, sorted; a consolidated snapshot

Concurrent runs lose no entry, using only ``put_if_absent`` and atomic puts: the task that committed (or found)
a model's report writes its entry object with ``put_if_absent`` (the same fact twice is one object; different
facts never share a key). The entry objects are the record. An incremental run's driver reads ``ledger.json``
plus the entry objects missing from it, and at its end rewrites ``ledger.json`` atomically when that merge
differs from what it read. Two drivers rewriting it at once may each drop the other's newest entries from the
snapshot, never from the entry objects, so the next reader merges them back.
``report_key`` is relative to the output prefix (``runs/…/report.json``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from pydantic import ValidationError

from ..errors import KeyNotFound
from ..schema import LedgerEntry, Status, ZooLedger
from ..storage import Storage, safe_key, sha256_bytes

LEDGER = "ledger.json"
ENTRIES = "ledger/"
READ_THREADS = 16


def new_entry(sha256: str, source_key: str, report_key: str, status: Status, fingerprint: str | None,
              arch_sha256: str | None = None) -> LedgerEntry:
    """An entry finished now (UTC, whole seconds)."""
    return LedgerEntry(sha256=sha256, source_key=source_key, report_key=report_key, status=status,
                       finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       source_fingerprint=fingerprint, arch_sha256=arch_sha256)


def entry_key(entry: LedgerEntry) -> str:
    """``ledger/<sha256>/<16 hex of report key, source key and fingerprint>.json``."""
    identity = "\n".join((entry.report_key, entry.source_key, entry.source_fingerprint or ""))
    return safe_key("ledger", entry.sha256, sha256_bytes(identity.encode())[:16] + ".json")


def record(output: Storage, entry: LedgerEntry) -> None:
    """Add ``entry`` to the ledger (a no-op if the same fact is recorded already)."""
    output.put_if_absent(entry_key(entry), entry.model_dump_json(indent=2).encode())


def read_ledger(output: Storage) -> ZooLedger:
    """``ledger.json`` merged with every entry object not in it."""
    return _load(output)[1]


def consolidate(output: Storage) -> ZooLedger:
    """Rewrite ``ledger.json`` (atomically) with every entry, if any is missing from it; returns the ledger."""
    snapshot, merged = _load(output)
    if merged != snapshot:
        output.put_bytes(LEDGER, merged.model_dump_json(indent=2).encode())
    return merged


def _sort_key(entry: LedgerEntry) -> tuple[str, str, str, str]:
    return entry.sha256, entry.report_key, entry.source_key, entry.source_fingerprint or ""


def _load(output: Storage) -> tuple[ZooLedger, ZooLedger]:
    """(``ledger.json`` as stored — empty if missing or damaged, the entry objects being the record —, merged)."""
    try:
        snapshot = ZooLedger.model_validate_json(output.get_bytes(LEDGER))
    except (KeyNotFound, ValidationError):
        snapshot = ZooLedger()
    entries = {entry_key(entry): entry for entry in snapshot.entries}
    missing = [key for key in output.list_keys(ENTRIES) if key not in entries]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for key, entry in zip(missing, pool.map(lambda key: _read_entry(output, key), missing)):
            if entry is not None:
                entries[key] = entry
    return snapshot, ZooLedger(entries=sorted(entries.values(), key=_sort_key))


def _read_entry(output: Storage, key: str) -> LedgerEntry | None:
    try:
        return LedgerEntry.model_validate_json(output.get_bytes(key))
    except (KeyNotFound, ValidationError):
        return None
