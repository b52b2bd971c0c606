"""统计报表 and 运行状态 through the console's pages with the real services behind them: the
compliance table per district and per unit, its SVG chart (compliant vs not, the gap per
subject) with figures matching the claims report, the CSV/XLSX files streamed through; the sync
summary and a dead letter replayed through the service's inbox."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
import pytest

from console.tests.city_support import City, alerts, city_console
from libs.common.db import utcnow
from libs.common.events import Affiliation, ClaimSubmitted


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[City]:
    async with city_console(tmp_path, with_claims=True, with_sync=True) as running:
        claims = running.claims
        assert claims is not None
        review = running.review
        # U1 (of D1): one compliant, one missing 20 professional hours; U2 (of D2): none credited
        done = await claims.register(review.orgs["U1"], name="赵一")
        await claims.credit(done.id, "public", "30")
        await claims.credit(done.id, "professional", "60")
        short = await claims.register(review.orgs["U1"], name="钱二")
        await claims.credit(short.id, "public", "30")
        await claims.credit(short.id, "professional", "40")
        await claims.register(review.orgs["U2"], name="孙三")
        yield running


def numbers(row: str) -> list[str]:
    return [c.split("</td>")[0] for c in row.split('class="num">')[1:]]


async def test_the_city_sees_compliance_per_district_and_unit(city: City) -> None:
    review = city.review
    await city.browser.sign_in("city_admin")
    before = city.calls
    page = await city.browser.get("/reports", year=2026)
    assert page.status_code == 200, page.text
    assert city.calls - before <= 3  # two lists of authorities, one report: whatever the size
    assert alerts(page) == []
    text = page.text
    assert "按区（市）人社局 / 市直主管部门" in text
    assert '<svg role="img"' in text and "达标与未达标人数" in text and "各科目学时缺口" in text
    # D1's row: 2 persons, 1 compliant, 50.0%, gaps 0 public and 20 professional
    row = text[text.index(f'org_id={review.orgs["D1"]}">') :].split("</tr>")[0]
    assert numbers(row) == ["2", "1", "1", "50.0%", "0.0", "20.0"]
    # the whole city: 3 persons, 1 compliant; 30 + 60 + 20 hours missing
    total = text[text.index('<tr class="total">') :].split("</tr>")[0]
    assert numbers(total) == ["3", "1", "2", "33.3%", "30.0", "80.0"]
    # a district's report: its units
    page = await city.browser.get("/reports", year=2026, org_id=review.orgs["D1"])
    assert "：按单位" in page.text
    total = page.text[page.text.index('<tr class="total">') :].split("</tr>")[0]
    assert numbers(total) == ["2", "1", "1", "50.0%", "0.0", "20.0"]


async def test_a_district_admin_sees_its_own_district_only(city: City) -> None:
    await city.browser.sign_in("district_admin", city.review.orgs["D1"])
    page = await city.browser.get("/reports", year=2026)
    total = page.text[page.text.index('<tr class="total">') :].split("</tr>")[0]
    assert numbers(total)[0] == "2"
    other = await city.browser.get("/reports", year=2026, org_id=city.review.orgs["D2"])
    assert other.status_code in (403, 404) and alerts(other)


async def test_the_report_files_are_streamed_through(city: City) -> None:
    await city.browser.sign_in("city_admin")
    csv = await city.browser.get("/reports/download", year=2026, format="csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    text = csv.content.decode("utf-8-sig")
    assert all(name in text for name in ("赵一", "钱二", "孙三"))
    xlsx = await city.browser.get("/reports/download", year=2026, format="xlsx")
    assert xlsx.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert "compliance" in book.sheetnames
    table = await city.browser.get("/reports/download", year=2026, format="csv", report="orgs")
    assert table.status_code == 200 and "attachment" in table.headers["content-disposition"]
    assert "合计" in table.content.decode("utf-8-sig")
    bad = await city.browser.get("/reports/download", year=2026, format="pdf")
    assert bad.status_code == 422


async def test_ops_shows_the_sync_summary_and_replays_a_dead_letter(city: City) -> None:
    review = city.review
    state = review.app.state.service
    claim_id = str(uuid.uuid4())
    event = ClaimSubmitted(
        claim_id=claim_id,
        revision=1,
        person_id=f"person-{claim_id[:8]}",
        person_name="张三",
        id_number_masked="370402********0012",
        affiliation=Affiliation(kind="unit", org_id=review.orgs["U1"]),
        year=2026,
        category="training",
        subject="professional",
        title="急诊医学新进展培训班",
        requested_hours=16,
        expected_credits=[],
        verified_evidence=False,
    ).envelope(source="claims", subject=claim_id, correlation_id=None)
    letter_id = str(uuid.uuid4())
    async with state.sessionmaker() as session:  # as the consumer leaves a poison event
        await session.execute(
            state.spec.infra.dead_letters.insert().values(
                id=letter_id,
                topic="claims.events",
                partition=0,
                offset=41,
                key=claim_id,
                event_type=event.type,
                payload=event.to_bytes(),
                error="RuntimeError: the handler failed",
                created_at=utcnow(),
            )
        )
        await session.commit()

    await city.browser.sign_in("ops")
    page = await city.browser.get("/ops")
    assert page.status_code == 200, page.text
    assert "省平台同步" in page.text and "省平台熔断器" in page.text
    assert "claim.submitted" in page.text and "the handler failed" in page.text
    assert f"/ops/dead-letters/review/{letter_id}/replay" in page.text
    assert alerts(page) == []
    replayed = await city.browser.post(f"/ops/dead-letters/review/{letter_id}/replay")
    page = await city.browser.follow(replayed)
    assert "已重新处理" in page.text and "claim.submitted" not in page.text
    assert (await review.open_task(claim_id))["claim_id"] == claim_id  # the event had its effect
    again = await city.browser.post(f"/ops/dead-letters/review/{letter_id}/replay")
    assert alerts(again) == ["重放失败：死信不存在。"]


async def test_ops_shows_a_service_that_does_not_answer(tmp_path: Path) -> None:
    async with city_console(tmp_path) as city:  # no claims, no sync behind this console
        await city.browser.sign_in("city_admin")
        page = await city.browser.get("/ops")
        assert page.status_code == 200
        assert "同步服务：服务暂时不可用，请稍后重试。" in alerts(page)
        assert "没有死信" in page.text  # review and registry still show
