"""Object storage through fsspec: a local folder by default, ``s3://bucket/prefix`` with s3fs.

Keys are built only from validated ids (:func:`safe_key`), so no id can write outside its
prefix. Writes are atomic: a local file is written beside its target and renamed into place;
an object store PUT is atomic by itself. Writing the same key again overwrites it, so a
retried job replaces its outputs instead of duplicating them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec

from .config import Settings
from .errors import JobqError

SAFE_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class StorageError(JobqError):
    code = "ERR_STORAGE"


class UnsafeKey(StorageError, ValueError):
    code = "ERR_UNSAFE_ID"
    retryable = False


def _content_type(content_type: str | None) -> dict[str, str]:
    return {"ContentType": content_type} if content_type else {}


def safe_part(part: str) -> str:
    """Return ``part`` if it is a safe single path segment, else raise :class:`UnsafeKey`."""
    if not isinstance(part, str) or not SAFE_PART.fullmatch(part) or ".." in part:
        raise UnsafeKey(f"unsafe id for a storage key: {part!r}")
    return part


def safe_key(*parts: str) -> str:
    """Join validated segments with ``/``; every segment must pass :func:`safe_part`."""
    return "/".join(safe_part(p) for p in parts)


class Storage:
    """A folder of objects addressed by ``/``-separated keys."""

    def __init__(self, url: str, public_url: str | None = None, **options: Any) -> None:
        self.url_root = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url_root, **options)
        self.root = root.rstrip("/")
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.local:
            os.makedirs(self.root, exist_ok=True)
        self.public_url = public_url.rstrip("/") if public_url else None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Storage:
        s = settings or Settings.from_env()
        return cls(s.storage_url, s.storage_public_url)

    def _path(self, key: str) -> str:
        parts = key.split("/")
        for p in parts:
            safe_part(p)
        return f"{self.root}/{key}"

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Write ``data`` at ``key`` atomically; returns the key. ``content_type`` is kept by object
        stores (S3 ``ContentType``) and ignored on a local folder."""
        path = self._path(key)
        if self.local:
            with self._replace(path) as fh:
                fh.write(data)
        else:
            self.fs.pipe_file(path, data, **_content_type(content_type))
        return key

    def put_file(self, key: str, local_path: str, content_type: str | None = None) -> str:
        """Upload a local file at ``key`` atomically (streamed, not read into memory)."""
        path = self._path(key)
        if self.local:
            with self._replace(path) as dst, open(local_path, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            self.fs.put_file(local_path, path, **_content_type(content_type))
        return key

    @contextlib.contextmanager
    def _replace(self, path: str) -> Iterator[IO[bytes]]:
        """A file beside ``path`` renamed over it once written: readers see the old or the new object,
        never half of one; a failed write leaves nothing behind."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{os.path.dirname(path)}/.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def open(self, key: str) -> IO[bytes]:
        return self.fs.open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm(self._path(key), recursive=True)
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (a folder), relative to the storage root."""
        base = self._path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root.lstrip("/")
        out = []
        for p in found:
            rel = p.lstrip("/")[len(root):].lstrip("/")
            if not rel.rsplit("/", 1)[-1].startswith(".tmp-"):
                out.append(rel)
        return sorted(out)

    def url(self, key: str) -> str:
        """The public URL of ``key``: ``STORAGE_PUBLIC_URL/key``, else the backend's URL."""
        self._path(key)
        if self.public_url:
            return f"{self.public_url}/{key}"
        if self.local:
            return "file://" + os.path.abspath(f"{self.root}/{key}")
        return f"{self.url_root}/{key}"
