"""Demo data for ``ce run --demo``, loaded through the public API like any client would:
the city bureau, the seven district bureaus of the notice, a city department, units, an agency,
and a few people. Loaded once per data directory."""

from __future__ import annotations

import time
from typing import Any

import httpx

from libs.common.auth import TokenService
from libs.common.settings import Settings

DISTRICTS = [
    ("370481", "滕州市人力资源和社会保障局"),
    ("370402", "市中区人力资源和社会保障局"),
    ("370403", "薛城区人力资源和社会保障局"),
    ("370404", "峄城区人力资源和社会保障局"),
    ("370405", "台儿庄区人力资源和社会保障局"),
    ("370406", "山亭区人力资源和社会保障局"),
    ("370471", "高新区社会事务综合服务中心"),
]
# ID numbers valid under GB 11643 (checksums computed), not real people
PEOPLE = [
    ("370402199001011238", "李明", "U-SZ-HOSP"),
    ("370402198503152423", "王芳", "U-SZ-HOSP"),
    ("370481199207204516", "赵强", "U-TZ-SCHOOL"),
    ("370403198811110029", "陈静", "A-XC-TALENT"),
]


def load_demo(urls: dict[str, str], settings: Settings) -> None:
    tokens = TokenService(settings)
    city = {"Authorization": f"Bearer {tokens.mint(role='city_admin')}"}
    with httpx.Client(timeout=10) as http:
        existing = http.get(f"{urls['review']}/v1/orgs", params={"type": "city"}, headers=city)
        if existing.status_code == 200 and existing.json()["items"]:
            print("demo: data already loaded in this data directory")
            return
        ids: dict[str, str] = {}

        def org(code: str, name: str, type_: str, parent: str | None = None) -> str:
            body: dict[str, Any] = {"code": code, "name": name, "type": type_}
            if parent:
                body["parent_id"] = ids[parent]
            r = http.post(f"{urls['review']}/v1/orgs", json=body, headers=city)
            r.raise_for_status()
            ids[code] = r.json()["id"]
            return ids[code]

        org("ZZ-HRSS", "枣庄市人力资源和社会保障局", "city")
        for code, name in DISTRICTS:
            org(code, name, "district", "ZZ-HRSS")
        org("D-HEALTH", "枣庄市卫生健康委员会", "department", "ZZ-HRSS")
        org("U-SZ-HOSP", "枣庄市立医院", "unit", "370402")
        org("U-TZ-SCHOOL", "滕州市第一中学", "unit", "370481")
        org("U-CITY-CDC", "枣庄市疾病预防控制中心", "unit", "D-HEALTH")
        org("A-XC-TALENT", "薛城区人才服务中心", "agency", "370403")
        org("P-ZZU", "枣庄学院继续教育基地", "provider", "ZZ-HRSS")
        org("EXAM-ZZ", "枣庄市人事考试中心", "exam_center", "ZZ-HRSS")
        time.sleep(1.0)  # let the org tree reach the claims service
        people: list[tuple[str, str]] = []
        for id_number, name, org_code in PEOPLE:
            kind = "agency" if org_code.startswith("A-") else "unit"
            body = {
                "id_number": id_number,
                "name": name,
                "affiliation": {"kind": kind, "org_id": ids[org_code]},
            }
            for _ in range(50):
                r = http.post(f"{urls['claims']}/v1/persons", json=body, headers=city)
                if r.status_code != 422 or r.json().get("code") != "unknown_org":
                    break
                time.sleep(0.2)
            r.raise_for_status()
            people.append((r.json()["id"], name))
        certificates = load_registry_demo(http, urls, tokens, ids)
        load_claims_demo(http, urls, tokens, people, dict(certificates))
    print("demo: loaded orgs, people, a filed project, certificates, an exam card and two")
    print("claims awaiting the unit's review. Open the console: http://127.0.0.1:8000 — or try:")
    print(f"  unit admin of 枣庄市立医院:  ce token --role unit_admin --org {ids['U-SZ-HOSP']}")
    print(f"  district admin of 市中区:     ce token --role district_admin --org {ids['370402']}")
    for person_id, name in people:
        print(f"  {name}: ce token --role personnel --person {person_id}")
    print(f"  provider 枣庄学院继续教育基地: ce token --role provider --org {ids['P-ZZU']}")
    print(f"  exam centre:                ce token --role exam_center --org {ids['EXAM-ZZ']}")
    for code, name in certificates:
        print(f"  {name}'s certificate: curl {urls['registry']}/v1/certificates/{code}")


DEMO_PROJECT = {
    "year": 2026,
    "address": "枣庄市薛城区复元三路1号",
    "name": "数字化管理师（初级）培训班",
    "person_in_charge": "王主任",
    "contact_name": "李老师",
    "contact_phone": "0632-3786666",
    "advanced_seminar": False,
    "plan": "第一天：数字化管理概论；第二天：数字化转型实务与考核",
    "target_trainees": "全市企事业单位专业技术人员",
    "planned_participants": 120,
    "start_date": "2026-11-02",
    "end_date": "2026-11-03",
    "days": 2,
    "planned_hours": 16,
    "venue": "枣庄学院继续教育基地",
    "form": "offline",
    "kind": "digital_manager",
    "level": "junior",
}


def load_registry_demo(
    http: httpx.Client, urls: dict[str, str], tokens: TokenService, ids: dict[str, str]
) -> list[tuple[str, str]]:
    """The provider files a project, the city approves it, the provider uploads completions of
    two demo people (each gets an e-certificate) and the exam centre issues one exam card."""
    registry = urls["registry"]
    provider = {"Authorization": f"Bearer {tokens.mint(role='provider', org_id=ids['P-ZZU'])}"}
    city = {"Authorization": f"Bearer {tokens.mint(role='city_admin')}"}
    body = {**DEMO_PROJECT, "applicant_org_id": ids["P-ZZU"]}
    for _ in range(50):  # the provider org reaches the registry as an event
        r = http.post(f"{registry}/v1/projects", json=body, headers=provider)
        if r.status_code != 422 or r.json().get("code") != "unknown_org":
            break
        time.sleep(0.2)
    r.raise_for_status()
    project_id = r.json()["id"]
    http.post(f"{registry}/v1/projects/{project_id}/submit", headers=provider).raise_for_status()
    http.post(
        f"{registry}/v1/projects/{project_id}/decision",
        json={"decision": "approve", "opinion": "同意备案"},
        headers=city,
    ).raise_for_status()
    roster = [
        {"id_number": id_number, "name": name, "hours": 16, "passed": True}
        for id_number, name, _ in PEOPLE[:2]
    ]
    r = http.post(f"{registry}/v1/projects/{project_id}/completions", json=roster, headers=provider)
    r.raise_for_status()
    exam = {"Authorization": f"Bearer {tokens.mint(role='exam_center', org_id=ids['EXAM-ZZ'])}"}
    id_number, name, _ = PEOPLE[2]
    http.post(
        f"{registry}/v1/exam-cards",
        json={"id_number": id_number, "name": name, "year": 2026, "hours": 12},
        headers=exam,
    ).raise_for_status()
    return [(row["certificate_code"], row["name"]) for row in r.json()["results"]]


def demo_pdf(title: str) -> bytes:
    """A one-page PDF standing in for a scanned certificate (the evidence file of a claim)."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    pdf.setFont("Helvetica", 14)
    pdf.drawString(72, 760, "Demo evidence (not a real certificate)")
    pdf.drawString(72, 736, title.encode("ascii", "replace").decode())
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def load_claims_demo(
    http: httpx.Client,
    urls: dict[str, str],
    tokens: TokenService,
    people: list[tuple[str, str]],
    certificates: dict[str, str],
) -> None:
    """Two training claims of 枣庄市立医院's people, with a PDF each, waiting for the unit's
    review: 李明's cites his e-certificate (verified evidence), 王芳's only a filing number."""
    claims = urls["claims"]
    by_name = {name: person_id for person_id, name in people}
    code_of = {name: code for code, name in certificates.items()}
    for name, title, extra in (
        ("李明", "数字化管理师（初级）培训班", {"certificate_code": code_of.get("李明")}),
        ("王芳", "急诊医学新进展培训班", {}),
    ):
        me = {"Authorization": f"Bearer {tokens.mint(role='personnel', person_id=by_name[name])}"}
        evidence = http.post(
            f"{claims}/v1/evidence",
            headers=me,
            files={"file": ("培训证书.pdf", demo_pdf(title), "application/pdf")},
        )
        evidence.raise_for_status()
        body = {
            "person_id": by_name[name],
            "year": 2026,
            "category": "training",
            "title": title,
            "hours": 16,
            "start_date": "2026-11-02",
            "end_date": "2026-11-03",
            "reference_no": "鲁卫继备〔2026〕15号",
            "evidence_ids": [evidence.json()["id"]],
            **{k: v for k, v in extra.items() if v},
        }
        for _ in range(50):  # the certificate reaches claims as an event
            r = http.post(f"{claims}/v1/claims", json=body, headers=me)
            if r.status_code != 422 or "certificate" not in r.json().get("code", ""):
                break
            time.sleep(0.2)
        r.raise_for_status()
