"""The adapter the sync service uses to talk to the province platform (省平台).

Every call goes through the same guarded path: a circuit breaker that fails fast while the province
is down, a client-side token bucket, an httpx timeout, and bounded retries with full-jitter
exponential backoff on 5xx, 429 (honouring ``Retry-After``), timeouts and connection errors.
Retrying is safe because every call is idempotent: registration by our record id, voiding by
nature, reads trivially.

Errors: :class:`ProvinceUnavailable` means "try again later" (it may carry ``retry_after`` and the
receipts obtained before the failure); :class:`ProvinceRejected` means the province refused the
request (a 4xx other than 429) and resending it will not help.

ID numbers are never logged by this module; it also masks them in httpx's own request log lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from libs.common.idnumber import mask_id_numbers_in
from libs.common.resilience import CircuitBreaker, CircuitOpen, MonotonicClock, TokenBucket
from libs.contracts.province import (
    MAX_BATCH,
    PersonHours,
    PersonTotal,
    ProvinceRecord,
    Receipt,
    RegisterResponse,
    TotalsPage,
    VoidReceipt,
)

if TYPE_CHECKING:
    from libs.common.settings import Settings

log = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=BaseModel)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ProvinceError(Exception):
    """Base of the province adapter's errors."""


class ProvinceUnavailable(ProvinceError):
    """The province could not be reached or kept failing: retry later.

    ``retry_after`` (seconds) is a hint when one is known (circuit open, long ``Retry-After``).
    ``receipts`` holds what a :meth:`ProvinceClient.register` call obtained before it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        receipts: Sequence[Receipt] = (),
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.receipts = list(receipts)


class ProvinceRejected(ProvinceError):
    """The province refused the request (4xx other than 429): resending it will not help.

    ``reason`` is the province's explanation, ``code`` its stable error code, ``status`` the HTTP
    status. ``receipts`` holds what a :meth:`ProvinceClient.register` call obtained from earlier
    batches before this one was rejected.
    """

    def __init__(
        self, status: int, code: str, reason: str, *, receipts: Sequence[Receipt] = ()
    ) -> None:
        super().__init__(f"province rejected the request ({status} {code}): {reason}")
        self.status = status
        self.code = code
        self.reason = reason
        self.receipts = list(receipts)

    @classmethod
    def from_response(cls, response: httpx.Response) -> ProvinceRejected:
        """Read the problem details of a 4xx response (tolerating a body that is not one)."""
        code, reason = f"http_{response.status_code}", response.reason_phrase
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("code") or code)
            reason = str(body.get("detail") or body.get("title") or reason)
        return cls(response.status_code, code, mask_id_numbers_in(reason))


class _MaskIdNumbers(logging.Filter):
    """Masks ID numbers in log records (httpx logs every request URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_id_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _install_logmask_id_numbers_in() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _MaskIdNumbers) for f in logger.filters):
        logger.addFilter(_MaskIdNumbers())


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def batch_key(records: Sequence[ProvinceRecord]) -> str:
    """The ``Idempotency-Key`` of a batch, derived from its content so a resend reuses it and a
    batch that differs in any way gets another (record-level idempotency is by ``record_id``)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(record.model_dump_json().encode())
        digest.update(b"\n")
    return f"batch-{digest.hexdigest()[:40]}"


# --------------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------------


class ProvinceClient:
    """Async client of the province platform. Use as ``async with ProvinceClient(...) as client``
    (or call :meth:`aclose`). One instance per process: the breaker and the rate limit are shared
    by every call made through it.

    ``max_attempts`` counts the first try; ``rate_limit_per_s`` of ``None`` disables client-side
    limiting; ``transport`` is handed to httpx (tests); ``rng`` drives the backoff jitter;
    ``clock`` (monotonic seconds) drives the breaker and the rate limit.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        rate_limit_per_s: float | None = 50.0,
        breaker_threshold: int = 5,
        breaker_reset_s: float = 30.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        max_retry_after_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.breaker = CircuitBreaker(
            breaker_threshold, breaker_reset_s, name="province", clock=clock
        )
        self.limiter = TokenBucket(rate_limit_per_s, clock=clock) if rate_limit_per_s else None
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        _install_logmask_id_numbers_in()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ProvinceClient:
        """A client configured from ``CE_PROVINCE_URL``, ``CE_PROVINCE_TIMEOUT_S`` and
        ``CE_PROVINCE_RATE_LIMIT_PER_S``; keyword ``overrides`` win."""
        options: dict[str, Any] = {
            "timeout_s": settings.province_timeout_s,
            "rate_limit_per_s": settings.province_rate_limit_per_s,
        }
        options.update(overrides)
        return cls(settings.province_url, **options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- public calls ------------------------------------------------------------------------------

    async def register(self, records: Sequence[ProvinceRecord]) -> list[Receipt]:
        """Register records in batches of at most 100; receipts come back in input order.

        Safe to repeat: records the province already holds come back with ``duplicate=True``.
        When a batch fails (:class:`ProvinceUnavailable` or :class:`ProvinceRejected`), the receipts
        of the batches before it are on the exception's ``receipts``; later batches are not sent.
        """
        receipts: list[Receipt] = []
        for start in range(0, len(records), MAX_BATCH):
            batch = records[start : start + MAX_BATCH]
            try:
                receipts.extend(await self._register_batch(batch))
            except (ProvinceUnavailable, ProvinceRejected) as exc:
                exc.receipts = receipts + exc.receipts
                raise
        return receipts

    async def void(self, record_id: str, *, reason: str | None = None) -> VoidReceipt:
        """Void a registered record so it stops counting (idempotent).

        Raises :class:`ProvinceRejected` with status 404 when the province never held it.
        """
        response = await self._call(
            "POST",
            f"/province/v1/records/{quote(record_id, safe='')}/void",
            what="void",
            json={"reason": reason},
        )
        return self._parse(VoidReceipt, response, "void")

    async def person_hours(self, id_number: str, year: int) -> PersonHours:
        """What the province holds for one person and year."""
        response = await self._call(
            "GET",
            f"/province/v1/persons/{quote(id_number, safe='')}/hours",
            what="person_hours",
            params={"year": year},
        )
        return self._parse(PersonHours, response, "person_hours")

    async def iter_totals(self, year: int, *, page_size: int = 500) -> AsyncIterator[PersonTotal]:
        """Per-person totals of the year, page by page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"year": year, "limit": page_size}
            if cursor:
                params["cursor"] = cursor
            response = await self._call("GET", "/province/v1/totals", what="totals", params=params)
            page = self._parse(TotalsPage, response, "totals")
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def totals(self, year: int, *, page_size: int = 500) -> list[PersonTotal]:
        """Per-person totals of the year, every page collected."""
        return [item async for item in self.iter_totals(year, page_size=page_size)]

    # -- internals ---------------------------------------------------------------------------------

    async def _register_batch(self, batch: Sequence[ProvinceRecord]) -> list[Receipt]:
        key = batch_key(batch)
        response = await self._call(
            "POST",
            "/province/v1/records",
            what="register",
            json={"records": [record.model_dump(mode="json") for record in batch]},
            headers={"Idempotency-Key": key},
        )
        by_id = {
            r.record_id: r for r in self._parse(RegisterResponse, response, "register").receipts
        }
        missing = [record.record_id for record in batch if record.record_id not in by_id]
        if missing:
            raise ProvinceUnavailable(f"province returned no receipt for {len(missing)} records")
        receipts = [by_id[record.record_id] for record in batch]
        log.info(
            "province registered batch %s: %d records, %d already held",
            key,
            len(receipts),
            sum(r.duplicate for r in receipts),
        )
        return receipts

    def _parse(self, model: type[_Model], response: httpx.Response, what: str) -> _Model:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ProvinceUnavailable(f"province {what}: malformed response") from exc

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1)))."""
        return self._rng.uniform(
            0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        )

    async def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One logical call: breaker, rate limit, timeout, bounded retries. ``what`` names the call
        in logs (never the URL, which may hold an ID number)."""
        failure = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.breaker.before_call()
            except CircuitOpen as exc:
                raise ProvinceUnavailable(str(exc), retry_after=exc.retry_after) from exc
            try:
                if self.limiter is not None:
                    await self.limiter.acquire()
                response = await self._http.request(
                    method, url, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                self.breaker.record_failure()
                failure = type(exc).__name__
                delay = self._backoff(attempt)
            except BaseException:
                self.breaker.release()
                raise
            else:
                status = response.status_code
                if status < 400:
                    self.breaker.record_success()
                    return response
                if status == 429:
                    # The province is up, just busy: not a breaker failure.
                    self.breaker.record_success()
                    wait = _retry_after_s(response.headers.get("Retry-After"))
                    if wait is not None and wait > self.max_retry_after_s:
                        raise ProvinceUnavailable(
                            f"province {what}: rate limited for {wait:.0f}s", retry_after=wait
                        )
                    failure = "429"
                    delay = max(wait or 0.0, self._backoff(attempt))
                elif status >= 500:
                    self.breaker.record_failure()
                    failure = str(status)
                    wait = _retry_after_s(response.headers.get("Retry-After"))
                    delay = max(min(wait or 0.0, self.max_retry_after_s), self._backoff(attempt))
                else:
                    self.breaker.record_success()
                    raise ProvinceRejected.from_response(response)
            if attempt < self.max_attempts:
                log.warning(
                    "province %s attempt %d/%d failed (%s); retrying in %.2fs",
                    what,
                    attempt,
                    self.max_attempts,
                    failure,
                    delay,
                )
                await asyncio.sleep(delay)
        raise ProvinceUnavailable(
            f"province {what} failed after {self.max_attempts} attempts (last: {failure})"
        )
