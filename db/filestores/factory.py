"""Opens the store a ``file_store`` row describes (the domain's ``FileStores`` port)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from db.enums import StoreBackend
from db.errors import StoreUnavailableError
from db.filestores.local import LocalStore
from db.filestores.s3 import S3Store

Store = LocalStore | S3Store


class Stores:
    """One adapter per store and process (they keep running upload hashes in memory).

    ``files_dir``: the default folder of LOCAL stores, and where S3 stores stage
    partial uploads.
    """

    def __init__(self, files_dir: Path) -> None:
        self.files_dir = files_dir
        self._open: dict[tuple[int, str], Store] = {}

    def open(self, store_id: int, backend: str, configuration: Mapping[str, Any]) -> Store:
        key = (store_id, repr(sorted(configuration.items())))
        found = self._open.get(key)
        if found is None:
            found = self._make(store_id, backend, configuration)
            self._open[key] = found
        return found

    def _make(self, store_id: int, backend: str, configuration: Mapping[str, Any]) -> Store:
        if backend == StoreBackend.LOCAL:
            root = configuration.get("root")
            return LocalStore(Path(root) if isinstance(root, str) and root else self.files_dir)
        if backend == StoreBackend.S3:
            return S3Store(configuration, self.files_dir / ".uploads" / f"s3-{store_id}")
        raise StoreUnavailableError(f"no file store backend {backend!r}")
