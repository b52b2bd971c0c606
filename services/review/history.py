"""The tamper-evident decision history: per claim, a chain of steps, each hashing its own content
and the hash of the step before it (SHA-256 over canonical JSON).

Editing a stored step changes its content hash; deleting one breaks the link of the next step (or,
for the last step, disagrees with the claim's head row); inserting one breaks a link or the head.
``verify_chain`` names the first step that does not check out. The chain proves the history was not
rewritten *by someone who does not also recompute every later hash*; the head row and regular
verification (``GET /v1/admin/history/verify``) are what makes a silent rewrite costly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from libs.common.uow import UnitOfWork
from services.review.models import HistoryDecision, HistoryEntry, HistoryHead, TaskStage
from services.review.schemas import HistoryStep

GENESIS = "0" * 64  # the "previous hash" of a claim's first step


def step_hash(
    *,
    claim_id: str,
    seq: int,
    revision: int,
    stage: str,
    org_id: str,
    from_org_id: str | None,
    actor: str,
    decision: str,
    reason: str | None,
    at: datetime,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of one step's content and the previous step's hash. The field set and the
    encoding are part of the stored data: changing them is a new hash version, never an edit."""
    content = {
        "claim_id": claim_id,
        "seq": seq,
        "revision": revision,
        "stage": stage,
        "org_id": org_id,
        "from_org_id": from_org_id,
        "actor": actor,
        "decision": decision,
        "reason": reason,
        "at": at.isoformat(timespec="microseconds"),
        "prev_hash": prev_hash,
    }
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def hash_of(entry: HistoryEntry) -> str:
    return step_hash(
        claim_id=entry.claim_id,
        seq=entry.seq,
        revision=entry.revision,
        stage=entry.stage,
        org_id=entry.org_id,
        from_org_id=entry.from_org_id,
        actor=entry.actor,
        decision=entry.decision,
        reason=entry.reason,
        at=entry.at,
        prev_hash=entry.prev_hash,
    )


async def append(
    uow: UnitOfWork,
    *,
    claim_id: str,
    revision: int,
    stage: TaskStage,
    org_id: str,
    actor: str,
    decision: HistoryDecision,
    reason: str | None = None,
    from_org_id: str | None = None,
) -> HistoryEntry:
    """Add the next step of a claim's chain. The head row is locked, so two writers of one claim
    append one after the other and never fork the chain."""
    session = uow.session
    head = await session.get(HistoryHead, claim_id, with_for_update=True)
    prev_hash, seq = (head.hash, head.seq + 1) if head else (GENESIS, 1)
    entry = HistoryEntry(
        claim_id=claim_id,
        seq=seq,
        revision=revision,
        stage=stage,
        org_id=org_id,
        from_org_id=from_org_id,
        actor=actor,
        decision=decision,
        reason=reason,
        at=uow.now(),
        prev_hash=prev_hash,
    )
    entry.hash = hash_of(entry)
    if head is None:
        session.add(HistoryHead(claim_id=claim_id, seq=seq, hash=entry.hash))
    else:
        head.seq, head.hash = seq, entry.hash
    session.add(entry)
    return entry


@dataclass(frozen=True)
class ChainCheck:
    verified: bool
    broken_step: int | None  # the seq of the first step that does not check out


def verify_chain(entries: Sequence[HistoryEntry], head: HistoryHead | None) -> ChainCheck:
    """Check one claim's steps (ordered by ``seq``) against their hashes, links and the head."""
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.seq != expected_seq or entry.prev_hash != prev or entry.hash != hash_of(entry):
            return ChainCheck(False, expected_seq)
        prev = entry.hash
    last = len(entries)
    if head is None:
        return ChainCheck(last == 0, 1 if last else None)
    if head.seq > last:  # the last step(s) deleted
        return ChainCheck(False, last + 1)
    if head.seq < last:  # a step appended behind the head's back
        return ChainCheck(False, head.seq + 1)
    if head.hash != prev:  # the last step replaced, its hash recomputed
        return ChainCheck(False, last)
    return ChainCheck(True, None)


async def chain_of(uow: UnitOfWork, claim_id: str) -> tuple[list[HistoryEntry], ChainCheck]:
    entries = list(
        (
            await uow.session.scalars(
                select(HistoryEntry)
                .where(HistoryEntry.claim_id == claim_id)
                .order_by(HistoryEntry.seq, HistoryEntry.at, HistoryEntry.id)
            )
        ).all()
    )
    head = await uow.session.get(HistoryHead, claim_id)
    return entries, verify_chain(entries, head)


def step_view(entry: HistoryEntry) -> HistoryStep:
    return HistoryStep(
        step=entry.seq,
        revision=entry.revision,
        stage=entry.stage,
        org_id=entry.org_id,
        from_org_id=entry.from_org_id,
        actor=entry.actor,
        decision=entry.decision,
        reason=entry.reason,
        at=entry.at.isoformat(),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


async def verify_all(uow: UnitOfWork, batch: int = 2000) -> dict[str, Any]:
    """Check every claim's chain, reading the history in (claim, step) order a batch at a time."""
    heads = {h.claim_id: h for h in (await uow.session.scalars(select(HistoryHead))).all()}
    checked = 0
    broken: list[dict[str, Any]] = []

    def close(claim_id: str, entries: list[HistoryEntry]) -> None:
        nonlocal checked
        checked += 1
        result = verify_chain(entries, heads.pop(claim_id, None))
        if not result.verified:
            broken.append({"claim_id": claim_id, "step": result.broken_step})

    current: str | None = None
    entries: list[HistoryEntry] = []
    async for entry in _stream(uow, batch):
        if entry.claim_id != current:
            if current is not None:
                close(current, entries)
            current, entries = entry.claim_id, []
        entries.append(entry)
    if current is not None:
        close(current, entries)
    for claim_id in sorted(heads):  # heads whose every step was deleted
        close(claim_id, [])
    return {"checked": checked, "broken": broken}


async def _stream(uow: UnitOfWork, batch: int) -> AsyncIterator[HistoryEntry]:
    after: tuple[str, int] | None = None
    while True:
        stmt = select(HistoryEntry).order_by(HistoryEntry.claim_id, HistoryEntry.seq)
        if after is not None:
            stmt = stmt.where(
                (HistoryEntry.claim_id > after[0])
                | ((HistoryEntry.claim_id == after[0]) & (HistoryEntry.seq > after[1]))
            )
        rows = list((await uow.session.scalars(stmt.limit(batch))).all())
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1].claim_id, rows[-1].seq)
        uow.session.expunge_all()
