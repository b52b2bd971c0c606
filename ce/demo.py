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
    print("demo: loaded orgs and people. Try:")
    print(f"  unit admin of 枣庄市立医院:  ce token --role unit_admin --org {ids['U-SZ-HOSP']}")
    print(f"  district admin of 市中区:     ce token --role district_admin --org {ids['370402']}")
    for person_id, name in people:
        print(f"  {name}: ce token --role personnel --person {person_id}")
