"""Logs never carry resident ID numbers or tokens, whatever a caller passes to the logger; the
scrape-time gauge refresh of ``/metrics`` is bounded."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import httpx

from libs.common.context import correlation_id
from libs.common.observability import JsonFormatter, redact
from libs.common.service import ServiceState, create_service_app
from libs.common.settings import Settings
from services.review import main as review_main

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_redact_masks_id_numbers_and_tokens() -> None:
    line = f"person 37040219900101123X logged in with Bearer {TOKEN}"
    out = redact(line)
    assert "37040219900101123X" not in out and "370402********123X" in out
    assert TOKEN not in out
    # ordinary numbers (phone numbers, counts) stay as they are
    assert redact("phone 13800138000, 42 hours") == "phone 13800138000, 42 hours"


def test_json_formatter_redacts_message_and_extras_and_carries_correlation_id() -> None:
    record = logging.LogRecord(
        "t", logging.WARNING, __file__, 1, "claim by %s", ("110105194912310021",), None
    )
    record.id_number = "110105194912310021"
    token = correlation_id.set("corr-1")
    try:
        out = JsonFormatter("claims").format(record)
    finally:
        correlation_id.reset(token)
    assert "110105194912310021" not in out
    entry = json.loads(out)
    assert entry["msg"] == "claim by 110105********0021"
    assert entry["correlation_id"] == "corr-1" and entry["service"] == "claims"


def test_one_masking_rule_for_id_numbers_in_text_and_alone() -> None:
    """Logs, the province client's errors and API views mask an ID number the same way."""
    from libs.common.idnumber import mask_id_number, mask_id_numbers_in

    text = "GET /province/v1/persons/37040219850612123x/hours and 110105194912310021."
    assert mask_id_numbers_in(text) == (
        "GET /province/v1/persons/370402********123X/hours and 110105********0021."
    )
    assert mask_id_number("37040219850612123x") == "370402********123X"
    assert redact(text) == mask_id_numbers_in(text)
    # glued to other letters or digits, it is not an ID number (a hex id, a longer number)
    assert mask_id_numbers_in("a110105194912310021 1101051949123100210") == (
        "a110105194912310021 1101051949123100210"
    )


async def test_a_slow_scrape_time_refresh_is_cut_off_and_counted(tmp_path: Path) -> None:
    """``ServiceSpec.metrics_refresh`` runs before ``/metrics`` renders, bounded by
    ``metrics_refresh_timeout_s``: a refresh that hangs does not hang the scrape, and one that
    fails is counted too; the gauges keep the values of the last refresh that worked."""
    calls: list[str] = []
    mode = {"now": "ok"}

    async def refresh(state: ServiceState) -> None:
        calls.append(mode["now"])
        if mode["now"] == "hang":
            await asyncio.sleep(30)
        if mode["now"] == "fail":
            raise RuntimeError("database gone")

    spec = replace(review_main.SPEC, metrics_refresh=refresh)
    settings = Settings(
        service="review",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'review.db'}",
        metrics_refresh_timeout_s=0.3,
    )
    app = create_service_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
            assert (await http.get("/metrics")).status_code == 200
            mode["now"] = "hang"
            started = time.perf_counter()
            r = await http.get("/metrics")
            elapsed = time.perf_counter() - started
            assert r.status_code == 200 and elapsed < 2.0, elapsed
            mode["now"] = "fail"
            text = (await http.get("/metrics")).text
    assert calls == ["ok", "hang", "fail"]
    assert 'metrics_refresh_failures_total{reason="timeout",service="review"} 1.0' in text
    assert 'metrics_refresh_failures_total{reason="error",service="review"} 1.0' in text
