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
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}

# --- active content in PDFs -------------------------------------------------------------------
# A PDF may carry scripts (/JavaScript, /JS: run by a viewer on open, /OpenAction, or on page and
# field events, /AA) and launch actions (/Launch: open another program or file). Evidence is a
# scanned or exported certificate: none of these belongs in one, so such a file is refused.
# Names match written with ``#xx`` escapes too (``/J#61vaScript``), and compressed object
# streams (/ObjStm), where a dictionary can hide, are inflated and read too (bounded). The scan
# is linear and goes in slices, so a crafted 10 MiB file holds the interpreter for milliseconds
# at a time, not seconds (it runs in a worker thread beside the event loop).
ACTIVE_PDF_NAMES = ("JavaScript", "JS", "Launch")
_NAME_CHAR = rb"[^\s/\[\]()<>{}%]"  # anything but white space and the delimiters
_SLICE = 64 * 1024
_LONGEST_TOKEN = 64  # "/" and 10 characters, each at most 3 bytes (#xx), with room to spare
MAX_INFLATED_BYTES = 32 * 1024 * 1024  # all object streams of one file together
_HEAD_BYTES = 4096  # how far a stream's dictionary is looked for around its /ObjStm
MAX_OBJECT_STREAMS = 1000  # a certificate has a handful; more is a file made to be slow


def _hex_escape(char: str) -> bytes:
    """The ``#xx`` escape of ``char`` in a PDF name, either case of hex digit."""
    digits = f"{ord(char):02x}"
    return b"#" + "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits).encode()


def _name_pattern(name: str) -> bytes:
    """The whole name token ``name`` (after the ``/``), each character as itself or escaped."""
    chars = b"".join(b"(?:%s|%s)" % (re.escape(c.encode()), _hex_escape(c)) for c in name)
    return b"(?P<%s>%s)(?!%s)" % (name.encode(), chars, _NAME_CHAR)


_NAMES = re.compile(
    b"/(?:" + b"|".join(_name_pattern(n) for n in (*ACTIVE_PDF_NAMES, "ObjStm")) + b")"
)
_FLATE = re.compile(b"/" + _name_pattern("FlateDecode"))
_STREAM = re.compile(rb"(?<!end)stream\r?\n")


class UncheckablePdf(ValueError):
    """An object stream that cannot be read (damaged, encrypted or inflating past the bound)."""


def _scan(data: bytes | memoryview) -> tuple[set[str], list[int]]:
    """The active names in ``data`` and where each /ObjStm is, a slice at a time; raises
    :class:`UncheckablePdf` past twice :data:`MAX_OBJECT_STREAMS` of them."""
    view = memoryview(data)
    found: set[str] = set()
    object_streams: list[int] = []
    for start in range(0, len(view), _SLICE):
        for match in _NAMES.finditer(view[start : start + _SLICE + _LONGEST_TOKEN]):
            if match.start() >= _SLICE:
                continue  # begins in the overlap: the next slice has all of it
            if match.lastgroup == "ObjStm":
                object_streams.append(start + match.start())
                if len(object_streams) > 2 * MAX_OBJECT_STREAMS:  # each names itself once
                    raise UncheckablePdf(f"more than {MAX_OBJECT_STREAMS} object streams")
            elif match.lastgroup:
                found.add(match.lastgroup)
    return found, object_streams


def _inflated_object_streams(data: bytes, positions: list[int]) -> list[bytes]:
    """The content of the stream after each /ObjStm name (each stream once), inflated, at most
    :data:`MAX_INFLATED_BYTES` and :data:`MAX_OBJECT_STREAMS` in all; raises
    :class:`UncheckablePdf` if one cannot be read."""
    contents: list[bytes] = []
    budget = MAX_INFLATED_BYTES
    searched_until = 0  # the end of the last stream keyword found
    for position in positions:
        if position < searched_until:
            continue  # the same dictionary as the name before
        stream = _STREAM.search(data, position, position + _HEAD_BYTES)
        if stream is None:
            # a dictionary padded past the window would hide its stream from this check
            raise UncheckablePdf("an object stream whose dictionary does not end")
        head = data[max(position - _HEAD_BYTES, searched_until) : stream.start()]
        searched_until = stream.end()
        if len(contents) == MAX_OBJECT_STREAMS:
            raise UncheckablePdf(f"more than {MAX_OBJECT_STREAMS} object streams")
        if not _FLATE.search(head):
            raise UncheckablePdf("an object stream without FlateDecode")
        end = data.find(b"endstream", stream.end())
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(
                data[stream.end() : end if end >= 0 else len(data)], budget + 1
            )
        except zlib.error as exc:
            raise UncheckablePdf("an object stream does not inflate") from exc
        if len(content) > budget or inflater.unconsumed_tail:
            raise UncheckablePdf("the object streams inflate past the bound")
        budget -= len(content)
        contents.append(content)
    return contents


def pdf_active_content(data: bytes) -> set[str]:
    """The names of active content (:data:`ACTIVE_PDF_NAMES`) a PDF carries, in its objects or
    its object streams; raises :class:`UncheckablePdf` if an object stream cannot be read."""
    found, object_streams = _scan(data)
    for content in _inflated_object_streams(data, object_streams):
        found |= _scan(content)[0]  # an object stream holds no object streams
    return found


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


def download_name(evidence: Evidence) -> str:
    """The name a file is downloaded as: the uploaded name with the extension of what the file
    is (a PDF named ``x.html`` is saved as ``x.pdf``, never opened as a page), else its id."""
    stem = (evidence.filename or f"evidence-{evidence.id}").strip()
    ext = EXTENSIONS.get(evidence.content_type, "")
    base, dot, old = stem.rpartition(".")
    if dot and base and old.isascii() and 0 < len(old) <= 5:
        stem = base
    return stem + ext


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
