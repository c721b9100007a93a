"""An S3-compatible bucket (AWS S3, MinIO, Ceph…), through boto3.

boto3 is synchronous: every call runs in a worker thread. Uploads are staged on this
machine's disk first (like the local store's) and sent as one managed multipart
upload once their digest is checked; downloads stream ranged GETs a MiB at a time,
so neither holds more than a few MiB. Credentials come from the environment (the
usual AWS variables or files), never from the store's configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from db.errors import StoreUnavailableError
from db.filestores.staging import READ_BYTES, Staging, shard

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
# Multipart parts of 8 MiB, two at a time: at most ~16 MiB in flight per transfer.
TRANSFER = TransferConfig(
    multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=2, use_threads=True
)


class S3Store:
    def __init__(self, configuration: Mapping[str, Any], staging: Path) -> None:
        bucket = configuration.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise StoreUnavailableError("an S3 store needs a bucket in its configuration")
        self.bucket = bucket
        self.prefix = str(configuration.get("prefix") or "").strip("/")
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=configuration.get("endpointUrl") or None,
            region_name=configuration.get("region") or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        self.staging = Staging(staging)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}/{shard(sha256)}" if self.prefix else shard(sha256)

    async def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailableError(f"S3 {what} failed: {exc}") from exc

    async def has(self, sha256: str) -> bool:
        try:
            await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self._key(sha256)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreUnavailableError(f"S3 HEAD failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"S3 HEAD failed: {exc}") from exc
        return True

    async def received(self, sha256: str) -> int:
        return await self.staging.received(sha256)

    async def receive(
        self, sha256: str, offset: int, chunks: AsyncIterable[bytes], length: int
    ) -> bool:
        return await self.staging.receive(sha256, offset, chunks, length)

    async def staged_digest(self, sha256: str) -> str:
        return await self.staging.digest(sha256)

    async def commit(self, sha256: str) -> None:
        await self.put_file(sha256, self.staging.path(sha256))
        await self.staging.discard(sha256)

    async def discard(self, sha256: str) -> None:
        await self.staging.discard(sha256)

    async def put_file(self, sha256: str, path: Path) -> None:
        if await self.has(sha256):
            return  # written once
        await self._call(
            "upload",
            self.client.upload_file,
            str(path),
            self.bucket,
            self._key(sha256),
            Config=TRANSFER,
        )

    async def read(self, sha256: str, start: int, stop: int) -> AsyncIterator[bytes]:
        if stop <= start:
            return
        found = await self._call(
            "GET",
            self.client.get_object,
            Bucket=self.bucket,
            Key=self._key(sha256),
            Range=f"bytes={start}-{stop - 1}",
        )
        body = found["Body"]
        blocks: Iterator[bytes] = body.iter_chunks(READ_BYTES)
        try:
            while True:
                block = await self._call("GET", next, blocks, b"")
                if not block:
                    break
                yield block
        finally:
            await asyncio.to_thread(body.close)

    async def local_path(self, sha256: str, scratch: Path) -> Path:
        target = scratch / sha256
        if not await asyncio.to_thread(target.is_file):
            await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
            await self._call(
                "download",
                self.client.download_file,
                self.bucket,
                self._key(sha256),
                str(target),
                Config=TRANSFER,
            )
        return target

    async def delete(self, sha256: str) -> None:
        with contextlib.suppress(StoreUnavailableError):
            await self._call(
                "DELETE", self.client.delete_object, Bucket=self.bucket, Key=self._key(sha256)
            )
