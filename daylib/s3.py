"""S3 access for worksets: the only module (with the store and notifier) that calls S3."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daylib.aws import guard
from daylib.errors import AwsError, AwsInvalidRequest, AwsNotFound
from daylib.s3uri import split_uri


@dataclass(frozen=True)
class Head:
    uri: str
    exists: bool
    size: int = 0
    error_code: str = ""


@dataclass(frozen=True)
class Level:
    """What one delimited listing saw: sub-folder names, files (name: size) and the number
    of list requests it took."""

    folders: tuple[str, ...]
    files: dict[str, int]
    requests: int


class S3Objects:
    """Thin, typed wrapper over one S3 client."""

    def __init__(self, client: Any) -> None:
        self.client = guard(client)

    def ensure_bucket(self, bucket: str, region: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
            return False
        except AwsNotFound:
            pass
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.client.create_bucket(**kwargs)
        return True

    def require_bucket(self, bucket: str, prefix: str) -> None:
        """Raise AwsError (NoSuchBucket, naming bucket and region) unless ``bucket`` exists;
        a one-key listing under ``prefix`` is what the daylib policies grant."""
        self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)

    def bucket_missing(self, bucket: str, key: str) -> bool:
        """True only when S3 says ``bucket`` does not exist (HeadObject's bare 404 cannot
        tell a missing bucket from a missing key); denied or failing answers say False."""
        try:
            self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except AwsError as exc:
            return exc.code == "NoSuchBucket"
        return False

    def level(self, bucket: str, prefix: str) -> Level:
        """One delimited listing of ``prefix``: its sub-folders and the files directly in it,
        so deeper objects (results/, logs/) cost no pages."""
        folders: list[str] = []
        files: dict[str, int] = {}
        requests = 0
        for page in self._pages(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            requests += 1
            folders.extend(cp["Prefix"][len(prefix):].rstrip("/")
                           for cp in page.get("CommonPrefixes", []))
            files.update((obj["Key"][len(prefix):], int(obj["Size"]))
                         for obj in page.get("Contents", []))
        return Level(tuple(folders), files, requests)

    def files(self, bucket: str, prefix: str) -> set[str]:
        """Names of the objects directly inside ``prefix`` (not in sub-folders)."""
        return set(self.level(bucket, prefix).files)

    def keys(self, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
        for page in self._pages(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield from self.client.get_paginator("list_objects_v2").paginate(**kwargs)

    def read_text(self, bucket: str, key: str, max_bytes: int) -> str | None:
        """The object's text, or None if it does not exist. Reads at most ``max_bytes`` + 1
        so an oversized file is detected without downloading it."""
        data = self.read_bytes(bucket, key, max_bytes)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_bytes(self, bucket: str, key: str, max_bytes: int) -> bytes | None:
        """The object's first ``max_bytes`` + 1 bytes, or None if it does not exist. An empty
        object answers a ranged GET with InvalidRange: that is b""."""
        try:
            resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")
        except AwsNotFound as exc:
            if exc.code == "NoSuchBucket":
                raise
            return None
        except AwsInvalidRequest as exc:
            if exc.code != "InvalidRange":  # an empty object answers a ranged GET so
                raise
            return b""
        data: bytes = resp["Body"].read()
        return data

    def head(self, uri: str) -> Head:
        bucket, key = split_uri(uri)
        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except AwsNotFound as exc:  # a missing bucket is reported, a missing key is not
            return Head(uri, False, error_code="" if exc.code != "NoSuchBucket" else exc.code)
        except AwsError as exc:
            return Head(uri, False, error_code=exc.code)
        return Head(uri, True, int(resp.get("ContentLength", 0)))

    def put_text(self, bucket: str, key: str, text: str) -> None:
        self.put_bytes(bucket, key, text.encode())

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def download(self, uri: str, dest: Path) -> None:
        bucket, key = split_uri(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(bucket, key, str(dest))

    def upload(self, src: Path, uri: str) -> None:
        bucket, key = split_uri(uri)
        self.client.upload_file(str(src), bucket, key)


__all__ = ["AwsError", "Head", "Level", "S3Objects", "split_uri"]
