"""Storage in a local directory: files under a root, every write atomic (temp file, then rename or link)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..errors import InputError, KeyNotFound
from .base import Storage
from .files import TEMP_SUFFIX, temp_beside, write_atomically, write_bytes_synced
from .keys import LOCAL_FINGERPRINT, _is_safe, safe_key, safe_prefix


class LocalStorage(Storage):
    """Objects are files under ``root``; keys map to relative paths."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        """The file of ``key``; InputError when a symbolic link on the way leads out of the root (a source
        must not be able to make a job read, or write, elsewhere)."""
        path = self.root / safe_key(key)
        inside = self.root.resolve()
        if inside not in path.resolve().parents:
            raise InputError(str(path), f"is a symbolic link to outside {self.root}; refused")
        return path

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(str(path)) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        write_atomically(self._path(key), lambda temp: write_bytes_synced(temp, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with temp_beside(path) as temp:
            write_bytes_synced(temp, data)
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

    def list_keys(self, prefix: str = "", *, unsafe: bool = False) -> list[str]:
        prefix = safe_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return []
        keys = []
        for directory, _, files in os.walk(start):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and not key.endswith(TEMP_SUFFIX) and (unsafe or _is_safe(key)):
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

        write_atomically(Path(path), copy)
        return LOCAL_FINGERPRINT + digest.hexdigest()

    def upload(self, path: Path | str, key: str) -> None:
        write_atomically(self._path(key), lambda temp: shutil.copyfile(path, temp))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str = "") -> str:
        return str(self.root / safe_key(key)) if key else str(self.root)

    def child(self, prefix: str) -> "LocalStorage":
        return LocalStorage(self._path(prefix))
