"""Evidence files: sniffed by content, size-limited, hashed, kept behind a storage port.

Two stores: local disk (the embedded default) and an S3-compatible bucket
(``CE_EVIDENCE_STORE=s3``), which every replica of claims shares. Either way files are addressed by
their SHA-256, a file is stored whole or not at all, and downloads go through claims, which checks
who may read them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import re
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import filetype
from sqlalchemy import select

from libs.common.auth import Principal
from libs.common.errors import DomainError, NotFound, RuleViolation
from libs.common.settings import Settings
from libs.common.uow import UnitOfWork
from services.claims.models import Claim, ClaimReference, Evidence, Person
from services.claims.scope import may_see_person

ALLOWED_CONTENT_TYPES = {"application/pdf", "image/jpeg", "image/png"}

# --- active content in PDFs -------------------------------------------------------------------
# A PDF may carry scripts (/JavaScript, /JS: run by a viewer on open, /OpenAction, or on page and
# field events, /AA) and launch actions (/Launch: open another program or file). Evidence is a
# scanned or exported certificate: none of these belongs in one, so such a file is refused.
# Names are compared after decoding ``#xx`` escapes (``/J#61vaScript``), and compressed object
# streams (/ObjStm), where a dictionary can hide, are inflated and read too (bounded).
ACTIVE_PDF_NAMES = frozenset({b"JavaScript", b"JS", b"Launch"})
_PDF_NAME = re.compile(rb"/([^\s/\[\]()<>{}%]+)")
_PDF_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_PDF_OBJ = re.compile(rb"\d+\s+\d+\s+obj\b")
MAX_INFLATED_BYTES = 32 * 1024 * 1024  # all object streams of one file together


class UncheckablePdf(ValueError):
    """An object stream that cannot be read (damaged, encrypted or inflating past the bound)."""


def _names(data: bytes) -> set[bytes]:
    return {
        _PDF_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
        for raw in _PDF_NAME.findall(data)
    }


def _object_streams(data: bytes) -> list[bytes]:
    """The inflated content of every /ObjStm with /FlateDecode, at most ``MAX_INFLATED_BYTES``."""
    found: list[bytes] = []
    budget = MAX_INFLATED_BYTES
    for match in _PDF_STREAM.finditer(data):
        head_start = max(
            (m.end() for m in _PDF_OBJ.finditer(data, max(0, match.start() - 4096), match.start())),
            default=max(0, match.start() - 4096),
        )
        names = _names(data[head_start : match.start()])
        if b"ObjStm" not in names:
            continue
        end = data.find(b"endstream", match.end())
        raw = data[match.end() : end if end >= 0 else len(data)]
        if b"FlateDecode" not in names:
            raise UncheckablePdf("an object stream without FlateDecode")
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(raw, budget + 1)
        except zlib.error as exc:
            raise UncheckablePdf("an object stream does not inflate") from exc
        if len(content) > budget or inflater.unconsumed_tail:
            raise UncheckablePdf("the object streams inflate past the bound")
        budget -= len(content)
        found.append(content)
    return found


def pdf_active_content(data: bytes) -> set[str]:
    """The names of active content (:data:`ACTIVE_PDF_NAMES`) a PDF carries, in its objects or
    its object streams; raises :class:`UncheckablePdf` if an object stream cannot be read."""
    names = _names(data)
    for content in _object_streams(data):
        names |= _names(content)
    return {name.decode("latin-1") for name in names & ACTIVE_PDF_NAMES}


def refuse_active_content(data: bytes) -> None:
    """422 ``evidence_active_content`` for a PDF with scripts or launch actions, 422
    ``evidence_unreadable`` for one whose object streams cannot be checked."""
    try:
        active = pdf_active_content(data)
    except UncheckablePdf as exc:
        raise RuleViolation(
            f"the PDF cannot be checked for scripts ({exc}); export or scan it again",
            code="evidence_unreadable",
        ) from exc
    if active:
        raise RuleViolation(
            "the PDF carries scripts or launch actions ("
            + ", ".join(f"/{name}" for name in sorted(active))
            + "); evidence must be a plain document: print it to PDF again or scan it",
            code="evidence_active_content",
            found=sorted(active),
        )


_CHUNK = 1024 * 1024


class EvidenceNotStored(LookupError):
    """The store has no object under this key."""


class EvidenceDigestMismatch(ValueError):
    """The bytes read do not hash to the SHA-256 they were stored under; nothing was kept."""


class EvidenceStore(Protocol):
    """Where evidence files live. Blocking: the service calls it in a worker thread.

    ``put`` reads ``source`` to its end and returns the key the file can be found under; the same
    content twice is one object. A failed or interrupted ``put`` leaves nothing behind."""

    def put(self, source: BinaryIO, sha256: str) -> str: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def close(self) -> None: ...


def evidence_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def _read_verified(source: BinaryIO, sha256: str) -> bytes:
    data = source.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EvidenceDigestMismatch(f"content does not hash to {sha256}")
    return data


class LocalEvidenceStore:
    """Evidence files on local disk, addressed by content hash (the default storage).

    Written to a temporary file with a unique name beside the target, then renamed: concurrent
    writers of the same content (two replicas on shared storage) never share a temporary file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, source: BinaryIO, sha256: str) -> str:
        key = evidence_key(sha256)
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{sha256}.", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise EvidenceDigestMismatch(f"content does not hash to {sha256}")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as exc:
            raise EvidenceNotStored(key) from exc

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def close(self) -> None:
        pass


class S3EvidenceStore:
    """Evidence files in an S3-compatible bucket (MinIO, Ceph, a cloud's S3), shared by replicas.

    A PutObject is atomic: an interrupted upload leaves no object. The bytes are checked against
    their SHA-256 before sending and the server verifies it again (``ChecksumSHA256``)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> S3EvidenceStore:
        import boto3
        from botocore.config import Config

        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=secret(settings.s3_access_key_id),
            aws_secret_access_key=secret(settings.s3_secret_access_key),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def _object(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def put(self, source: BinaryIO, sha256: str) -> str:
        data = _read_verified(source, sha256)  # size-limited upstream
        key = evidence_key(sha256)
        if not self.exists(key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object(key),
                Body=data,
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
            )
        return key

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise EvidenceNotStored(key) from exc
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def close(self) -> None:
        self.client.close()


def evidence_store_from(settings: Settings) -> EvidenceStore:
    """The store ``CE_EVIDENCE_STORE`` names: ``local`` (under CE_DATA_DIR) or ``s3``."""
    if settings.evidence_store == "s3":
        return S3EvidenceStore.from_settings(settings)
    return LocalEvidenceStore(settings.data_dir / "evidence")


async def store_evidence(
    uow: UnitOfWork,
    principal: Principal,
    store: EvidenceStore,
    *,
    data: bytes,
    filename: str | None,
    max_bytes: int,
) -> Evidence:
    if not data:
        raise RuleViolation("the file is empty", code="empty_evidence")
    if len(data) > max_bytes:
        raise DomainError(
            f"evidence files may be at most {max_bytes // (1024 * 1024)} MiB",
            code="evidence_too_large",
            status=413,
            title="The evidence file is too large",
            max_bytes=max_bytes,
        )
    kind = filetype.guess(data)
    content_type = kind.mime if kind else None
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise RuleViolation(
            "evidence must be a PDF, JPEG or PNG file (judged by its content, not its name)",
            code="unsupported_evidence_type",
        )
    if content_type == "application/pdf":
        await asyncio.to_thread(refuse_active_content, data)
    digest = hashlib.sha256(data).hexdigest()
    key = await asyncio.to_thread(store.put, io.BytesIO(data), digest)
    evidence = Evidence(
        owner=principal.sub,
        sha256=digest,
        content_type=content_type,
        size=len(data),
        filename=(filename or "")[:255] or None,
        storage_key=key,
    )
    uow.session.add(evidence)
    await uow.session.flush()
    return evidence


async def readable_evidence(uow: UnitOfWork, principal: Principal, evidence_id: str) -> Evidence:
    """Evidence its uploader may read, and so may whoever may see a person whose live claim
    cites it (the reviewers who must check it). Anything else is the same 404."""
    evidence = await uow.session.get(Evidence, evidence_id)
    if evidence is not None and (evidence.owner == principal.sub or principal.is_city):
        return evidence
    if evidence is not None:
        claim_ids = (
            await uow.session.scalars(
                select(ClaimReference.claim_id).where(
                    ClaimReference.kind == "file_sha256", ClaimReference.value == evidence.sha256
                )
            )
        ).all()
        for claim_id in claim_ids:
            claim = await uow.session.get(Claim, claim_id)
            if claim is None or evidence.id not in (claim.body.get("evidence_ids") or []):
                continue
            person = await uow.session.get(Person, claim.person_id)
            if person is not None and await may_see_person(uow.session, principal, person):
                return evidence
    raise NotFound(f"evidence {evidence_id} not found in your scope", code="evidence_not_found")
