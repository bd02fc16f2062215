"""A resumable record store: one JSON object per line, appended and synced as each result is computed.

Long runs (the KDE capacity sweep, the clustering benchmark, a chapter sweep's index) write each finished piece of
work here the moment it exists, so an interruption loses at most the piece in flight; a rerun reads the store, skips
what is there and does the rest. Each record carries a ``key``: the identity of the work (every setting that could
change its result), so a resumed run never reuses a record computed under other settings.

- A last line cut off mid-write (the process was killed) is dropped, and the file truncated to the last whole
  record, so the next append starts on a clean line.
- Any *other* line that is not a JSON object is corruption: :class:`CorruptStore`, naming the file and line —
  never a silent skip that would rerun (or worse, lose) finished work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

__all__ = ["CorruptStore", "RecordStore"]


class CorruptStore(ValueError):
    """A store file holds a line that is not a JSON object (other than a cut-off last line)."""


class RecordStore:
    """Append-only JSON-lines records at ``path``, each a dict with a string ``key`` (see the module docstring).

    ``store.get(key)`` returns the record stored under ``key`` (the last one, if several) or None;
    ``store.append(record)`` writes one and syncs it to disk; ``key in store``, ``len(store)`` and iteration
    (records in file order) work as for a mapping's values.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[str, dict] = {}
        self._order: list[str] = []
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        whole = raw.endswith(b"\n") or not raw
        keep = len(raw)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            last = number == len(lines)
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                    raise ValueError("not a JSON object with a string `key`")
            except ValueError as err:
                if last and not whole:  # killed mid-write: drop the fragment
                    keep = len(raw) - len(line)
                    break
                raise CorruptStore(f"{self.path}, line {number}: {err}") from None
            self._remember(record)
        if keep < len(raw):
            with self.path.open("r+b") as fh:
                fh.truncate(keep)

    def _remember(self, record: dict) -> None:
        key = record["key"]
        if key not in self._records:
            self._order.append(key)
        self._records[key] = record

    def append(self, record: dict[str, Any]) -> dict:
        """Write ``record`` (a dict with a string ``key``) as one line, flushed and synced; returns it."""
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise TypeError("a record must be a dict with a string `key`")
        line = json.dumps(record, sort_keys=True, allow_nan=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._remember(record)
        return record

    def get(self, key: str) -> dict | None:
        return self._records.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict]:
        return (self._records[k] for k in self._order)
