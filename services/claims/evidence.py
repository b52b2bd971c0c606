"""Evidence files: sniffed by content, size-limited, hashed, kept behind a storage port."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Protocol

import filetype
from sqlalchemy import select

from libs.common.auth import Principal
from libs.common.errors import DomainError, NotFound, RuleViolation
from libs.common.uow import UnitOfWork
from services.claims.models import Claim, ClaimReference, Evidence, Person
from services.claims.scope import may_see_person

ALLOWED_CONTENT_TYPES = {"application/pdf", "image/jpeg", "image/png"}


class EvidenceStore(Protocol):
    """Where evidence files live; ``put`` returns the key the file can be found under."""

    def put(self, data: bytes, sha256: str) -> str: ...

    def path(self, key: str) -> Path: ...


class LocalEvidenceStore:
    """Evidence files on local disk, addressed by content hash (the default storage)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes, sha256: str) -> str:
        key = f"{sha256[:2]}/{sha256}"
        path = self.root / key
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return key

    def path(self, key: str) -> Path:
        return self.root / key


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
    digest = hashlib.sha256(data).hexdigest()
    key = await asyncio.to_thread(store.put, data, digest)
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
