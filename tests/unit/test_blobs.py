import hashlib
import os
from pathlib import Path

import pytest

from coordinator.blobs import BlobError, BlobStore


def test_put_and_read_verify_content(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(3 * 1024 * 1024 + 17)
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha).parent.name == sha[:2]
    assert store.read_bytes(sha) == data
    assert store.put_bytes(data) == sha  # idempotent


def test_put_file_moves_atomically_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    source = tmp_path / "part"
    source.write_bytes(b"expert bytes")
    sha = store.put_file(source)
    assert not source.exists()
    assert store.read_bytes(sha) == b"expert bytes"
    leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []
    again = tmp_path / "again"
    again.write_bytes(b"expert bytes")
    assert store.put_file(again) == sha and not again.exists()


def test_corrupted_blob_is_reported_not_served(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    sha = store.put_bytes(b"a" * 1000)
    path = store.path(sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"b" * 1000)
    with pytest.raises(BlobError, match="corrupt"):
        store.read_bytes(sha)


def test_missing_and_malformed_names(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobError, match="missing"):
        store.read_bytes("0" * 64)
    with pytest.raises(BlobError, match="not a sha256"):
        store.path("../../etc/passwd")
