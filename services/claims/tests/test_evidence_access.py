"""Reviewers must see the certificate they approve: evidence is readable by its uploader and by
whoever may see a person whose live claim cites it; to everyone else it does not exist."""

from __future__ import annotations

from pathlib import Path

from services.claims.tests.harness import claims_stack, one_day_training, pdf_bytes


async def test_who_may_read_an_evidence_file(tmp_path: Path) -> None:
    async with claims_stack(tmp_path) as stack:
        district = await stack.add_org("district")
        unit = await stack.add_org("unit", district)
        other_unit = await stack.add_org("unit", district)
        person = await stack.register(unit)
        colleague = await stack.register(unit, name="李四")
        data = pdf_bytes("certificate of 张三")
        evidence_id = await stack.upload(person, data)
        unit_admin = stack.auth("unit_admin", unit)
        other_admin = stack.auth("unit_admin", other_unit)
        district_admin = stack.auth("district_admin", district)
        content = f"/v1/evidence/{evidence_id}/content"

        own = await stack.http.get(content, headers=person.auth)
        assert own.status_code == 200 and own.content == data
        assert own.headers["content-type"] == "application/pdf"
        assert own.headers["x-content-type-options"] == "nosniff"
        meta = await stack.http.get(f"/v1/evidence/{evidence_id}", headers=person.auth)
        assert meta.json()["size"] == len(data)
        # not cited by any claim yet: only the uploader sees it
        for headers in (unit_admin, colleague.auth):
            r = await stack.http.get(content, headers=headers)
            assert r.status_code == 404 and r.json()["code"] == "evidence_not_found"

        claim = await stack.submit(person, one_day_training([evidence_id]))
        for headers in (unit_admin, district_admin):
            r = await stack.http.get(content, headers=headers)
            assert r.status_code == 200 and r.content == data
        for headers in (other_admin, colleague.auth):
            assert (await stack.http.get(content, headers=headers)).status_code == 404

        withdrawn = await stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
        assert withdrawn.status_code == 200
        assert (await stack.http.get(content, headers=unit_admin)).status_code == 404
        assert (await stack.http.get(content, headers=person.auth)).status_code == 200
