"""A content-addressed blob store on disk.

Blobs are named by their sha256 and live at blobs/ab/abcdef…. Writes are
atomic (temporary file, fsync, rename, fsync of the directory); reads verify
the hash, so a corrupted blob is reported, never served.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from moerge.experts.manifest import sha256_file

CHUNK = 1024 * 1024


class BlobError(Exception):
    """A blob is missing, or its bytes do not hash to its name."""


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise BlobError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self.exists(sha):
            return sha
        target = self.path(sha)
        self._shard(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._publish(Path(tmp), target)
        return sha

    def put_file(self, source: Path, sha256: str | None = None) -> str:
        """Move a file into the store; `sha256`, when given, is trusted (the caller verified it)."""
        source = Path(source)
        sha = sha256 or sha256_file(source)
        target = self.path(sha)
        if target.is_file():
            source.unlink()
            return sha
        self._shard(target)
        with open(source, "rb+") as handle:
            os.fsync(handle.fileno())
        self._publish(source, target)
        return sha

    def _shard(self, target: Path) -> None:
        """Create the blob's shard directory durably (its entry lives in the root)."""
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.root)

    def _publish(self, tmp: Path, target: Path) -> None:
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        fsync_dir(target.parent)

    def read_bytes(self, sha256: str) -> bytes:
        return b"".join(self.iter_chunks(sha256))

    def iter_chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The blob's bytes; raises BlobError at the end when they do not hash to its name."""
        path = self.path(sha256)
        if not path.is_file():
            raise BlobError(f"blob {sha256} is missing from {self.root}")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
                yield chunk
        if digest.hexdigest() != sha256:
            raise BlobError(f"blob {sha256} is corrupt: its bytes hash to {digest.hexdigest()}")

    def verify(self, sha256: str) -> None:
        for _ in self.iter_chunks(sha256):
            pass
