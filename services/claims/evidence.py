"""Evidence files: sniffed by content, size-limited, hashed, kept behind a storage port."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import filetype

from libs.common.auth import Principal
from libs.common.errors import RuleViolation
from libs.common.uow import UnitOfWork
from services.claims.models import (
    Evidence,
)

ALLOWED_CONTENT_TYPES = {"application/pdf", "image/jpeg", "image/png"}


# --- evidence -------------------------------------------------------------------------------


class EvidenceStore(Protocol):
    """Where evidence files live; ``put`` returns the key the file can be found under."""

    def put(self, data: bytes, sha256: str) -> str: ...


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
        raise RuleViolation(
            f"evidence files may be at most {max_bytes // (1024 * 1024)} MiB",
            code="evidence_too_large",
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
    key = store.put(data, digest)
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
