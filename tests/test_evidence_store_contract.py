"""One contract for every evidence store (STYLE.md: a port gets one suite run against each
adapter): local disk, and S3 against a real S3-protocol server on loopback (moto's server).

put/get/exists, the same content twice is one object, a missing object, a digest that does not
match and an upload interrupted midway leave nothing behind, and two replicas writing the same
file at once on shared storage both succeed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from pydantic import SecretStr

from libs.common.settings import Settings
from services.claims.evidence import (
    EvidenceDigestMismatch,
    EvidenceNotStored,
    EvidenceStore,
    LocalEvidenceStore,
    S3EvidenceStore,
    evidence_key,
    evidence_store_from,
)
from tests.fixtures.object_store import S3_KEY_ID, S3_REGION, S3_SECRET, s3_client


@dataclass
class Backend:
    name: str
    new_store: Callable[[], EvidenceStore]  # another replica on the same storage
    listing: Callable[[], list[str]]  # every object or file the storage holds, temporary included


def _local(tmp_path: Path) -> Backend:
    root = tmp_path / "evidence"

    def listing() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Backend("local", lambda: LocalEvidenceStore(root), listing)


def _s3(endpoint: str, bucket: str) -> Backend:
    client = s3_client(endpoint)

    def new_store() -> EvidenceStore:
        settings = Settings(
            evidence_store="s3",
            s3_endpoint_url=endpoint,
            s3_region=S3_REGION,
            s3_bucket=bucket,
            s3_access_key_id=SecretStr(S3_KEY_ID),
            s3_secret_access_key=SecretStr(S3_SECRET),
        )
        store = evidence_store_from(settings)
        assert isinstance(store, S3EvidenceStore)
        return store

    def listing() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted([o["Key"] for o in objects] + [f"upload:{u['Key']}" for u in uploads])

    return Backend("s3", new_store, listing)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local(tmp_path)
    endpoint: str = request.getfixturevalue("s3_endpoint")
    return _s3(endpoint, request.getfixturevalue("s3_bucket"))


def _file(label: str, size: int = 300_000) -> tuple[bytes, str]:
    data = (label.encode() * (size // len(label) + 1))[:size]
    return data, hashlib.sha256(data).hexdigest()


class BrokenSource(io.RawIOBase):
    """An upload whose client goes away after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self.data, self.fail_after, self.pos = data, fail_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.fail_after:
            raise ConnectionResetError("the client went away mid-upload")
        n = min(len(buffer), self.fail_after - self.pos, 64 * 1024)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_put_then_get_and_exists(backend: Backend) -> None:
    store = backend.new_store()
    data, digest = _file("certificate")
    key = store.put(io.BytesIO(data), digest)
    assert key == evidence_key(digest)
    assert store.exists(key)
    assert store.get(key) == data
    assert backend.new_store().get(key) == data, "another replica reads it too"


def test_the_same_content_twice_is_one_object(backend: Backend) -> None:
    store = backend.new_store()
    data, digest = _file("same")
    first = store.put(io.BytesIO(data), digest)
    second = backend.new_store().put(io.BytesIO(data), digest)
    assert first == second
    assert len(backend.listing()) == 1, backend.listing()
    assert store.get(first) == data


def test_a_missing_object(backend: Backend) -> None:
    store = backend.new_store()
    key = evidence_key(hashlib.sha256(b"never stored").hexdigest())
    assert not store.exists(key)
    with pytest.raises(EvidenceNotStored):
        store.get(key)


def test_content_that_does_not_match_its_digest_leaves_nothing(backend: Backend) -> None:
    store = backend.new_store()
    data, digest = _file("original")
    with pytest.raises(EvidenceDigestMismatch):
        store.put(io.BytesIO(data[:-1] + b"X"), digest)
    assert not store.exists(evidence_key(digest))
    assert backend.listing() == []


def test_an_interrupted_upload_leaves_nothing(backend: Backend) -> None:
    store = backend.new_store()
    data, digest = _file("interrupted", size=1_000_000)
    with pytest.raises(ConnectionResetError):
        store.put(io.BufferedReader(BrokenSource(data, fail_after=400_000)), digest)
    assert not store.exists(evidence_key(digest))
    assert backend.listing() == []
    store.put(io.BytesIO(data), digest)  # the retry stores it whole
    assert store.get(evidence_key(digest)) == data


def _put_at_once(stores: list[EvidenceStore], data: bytes, digest: str) -> list[BaseException]:
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def put(store: EvidenceStore) -> None:
        barrier.wait(timeout=10)
        try:
            store.put(io.BytesIO(data), digest)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


def test_replicas_writing_one_file_at_once_all_succeed(backend: Backend) -> None:
    """Shared storage: the same certificate uploaded through several replicas at the same moment
    (a fixed temporary name made all but one of them fail)."""
    for round_ in range(8):
        data, digest = _file(f"race-{round_}", size=200_000)
        stores = [backend.new_store() for _ in range(4)]
        assert _put_at_once(stores, data, digest) == []
        assert stores[0].get(evidence_key(digest)) == data
    assert len(backend.listing()) == 8, backend.listing()


def test_s3_store_reports_an_unreachable_server(s3_bucket: str) -> None:
    import boto3
    from botocore.exceptions import EndpointConnectionError

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    data, digest = _file("offline")
    with pytest.raises(EndpointConnectionError):
        S3EvidenceStore(client, s3_bucket).put(io.BytesIO(data), digest)


class CuttingProxy:
    """A TCP proxy on loopback in front of the S3 server that drops every connection once it has
    carried ``cut_after`` bytes towards the server: an upload cut off mid-body."""

    def __init__(self, upstream: str, cut_after: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.cut_after = cut_after
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=10)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, towards_server: bool) -> None:
        carried = 0
        try:
            while chunk := src.recv(65536):
                carried += len(chunk)
                if towards_server and carried > self.cut_after:
                    self.cuts += 1
                    dst.sendall(chunk[: len(chunk) - (carried - self.cut_after)])
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def test_an_upload_cut_off_mid_transfer_leaves_no_object(s3_endpoint: str, s3_bucket: str) -> None:
    """The S3 side of "interrupted upload leaves nothing": the connection to the server drops
    after part of the body (every retry too); the server keeps no object and no partial upload."""
    import boto3

    proxy = CuttingProxy(s3_endpoint, cut_after=200_000)
    try:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=10),
        )
        store = S3EvidenceStore(client, s3_bucket, "evidence/")
        data, digest = _file("cut-off", size=1_000_000)
        with pytest.raises(BotoCoreError):
            store.put(io.BytesIO(data), digest)
        assert proxy.cuts >= 1
    finally:
        proxy.close()
    direct = _s3(s3_endpoint, s3_bucket)
    assert direct.listing() == []
    assert not direct.new_store().exists(evidence_key(digest))
