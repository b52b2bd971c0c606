"""Evidence is a plain document: a PDF carrying scripts or launch actions is refused at upload
(``evidence_active_content``), also when the names are escaped or hidden in a compressed object
stream; every file is served with ``Content-Security-Policy: sandbox`` and ``nosniff``, as a
download unless a preview is asked for (``?disposition=inline``)."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.claims.tests.harness import Person, Stack, claims_stack
from tests.support import assert_problem, disposition_of

CATALOG_PAGES = [
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
]


def pdf(catalog_extra: bytes = b"", *more: bytes, object_stream: bytes | None = None) -> bytes:
    """A small, well-formed PDF (objects, xref, trailer): its catalog with ``catalog_extra``,
    ``more`` objects from 4 on, and optionally a compressed object stream holding one object."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b" >>", *CATALOG_PAGES, *more]
    body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n% " + uuid.uuid4().hex.encode() + b"\n"
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    if object_stream is not None:
        number = len(objects) + 1
        packed = zlib.compress(b"%d 0 " % (number + 1) + object_stream)
        offsets.append(len(body))
        body += (
            b"%d 0 obj\n<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\n"
            b"stream\n%s\nendstream\nendobj\n"
            % (number, len(b"%d 0 " % (number + 1)), len(packed), packed)
        )
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(offsets) + 1,
        xref,
    )
    return body


ACTIVE = {
    "open_action_javascript": pdf(b"/OpenAction 4 0 R", b"<< /S /JavaScript /JS (app.alert(1)) >>"),
    "named_javascript": pdf(
        b"/Names << /JavaScript 4 0 R >>", b"<< /Names [(a) << /S /JavaScript /JS (x) >>] >>"
    ),
    "launch": pdf(b"/OpenAction 4 0 R", b"<< /S /Launch /F (cmd.exe) >>"),
    "escaped_names": pdf(b"/OpenAction 4 0 R", b"<< /S /J#61vaScript /J#53 (app.alert(1)) >>"),
    "in_an_object_stream": pdf(
        b"/OpenAction 5 0 R", object_stream=b"<< /S /JavaScript /JS (app.alert(1)) >>"
    ),
    "page_action": pdf(b"", b"<< /AA << /O << /S /JavaScript /JS (x) >> >> >>"),
    "in_an_escaped_object_stream": pdf(
        b"/OpenAction 5 0 R", object_stream=b"<< /S /JavaScript /JS (app.alert(1)) >>"
    ).replace(b"/Type /ObjStm", b"/Type /Obj#53tm"),
}


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("evidence-active")) as s:
        yield s


@pytest.fixture(scope="module")
async def person(stack: Stack) -> Person:
    district = await stack.add_org("district")
    return await stack.register(await stack.add_org("unit", district))


def stored_files(stack: Stack) -> int:
    root = stack.data_dir / "evidence"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@pytest.mark.parametrize("kind", sorted(ACTIVE))
async def test_a_pdf_with_scripts_or_launch_actions_is_refused(
    stack: Stack, person: Person, kind: str
) -> None:
    before = stored_files(stack)
    async with stack.no_new_state():
        r = await stack.http.post(
            "/v1/evidence",
            files={"file": ("cert.pdf", ACTIVE[kind], "application/pdf")},
            headers=person.auth,
        )
        problem = assert_problem(r, 422, "evidence_active_content")
    assert set(problem["found"]) & {"JavaScript", "JS", "Launch"}
    assert stored_files(stack) == before


@pytest.mark.parametrize(
    "dictionary",
    [
        b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>\nstream\nnot zlib at all",
        # padded so that its stream lies beyond where the check looks
        b"<< /Type /ObjStm /N 1 " + b" " * 5000 + b"/Filter /FlateDecode >>\nstream\nx",
        b"<< /Type /ObjStm /N 1 /First 4 /Filter /LZWDecode >>\nstream\nx",
    ],
    ids=["not_zlib", "padded", "other_filter"],
)
async def test_an_object_stream_that_cannot_be_read_is_refused(
    stack: Stack, person: Person, dictionary: bytes
) -> None:
    broken = pdf(b"").replace(
        b"trailer", b"9 0 obj\n" + dictionary + b"\nendstream\nendobj\ntrailer"
    )
    r = await stack.http.post(
        "/v1/evidence",
        files={"file": ("cert.pdf", broken, "application/pdf")},
        headers=person.auth,
    )
    assert_problem(r, 422, "evidence_unreadable")


async def test_a_pdf_made_to_be_slow_to_check_is_refused_quickly(
    stack: Stack, person: Person
) -> None:
    """Millions of /ObjStm names (a check per name would take minutes): refused at once."""
    crafted = b"%PDF-1.7\n" + b"/ObjStm " * (9 * 1024 * 1024 // 8)
    started = time.monotonic()
    r = await stack.http.post(
        "/v1/evidence",
        files={"file": ("cert.pdf", crafted, "application/pdf")},
        headers=person.auth,
    )
    assert_problem(r, 422, "evidence_unreadable")
    assert time.monotonic() - started < 2.0


async def test_a_plain_pdf_is_kept_and_served_sandboxed(stack: Stack, person: Person) -> None:
    # an /OpenAction that only shows the first page is no script
    plain = pdf(b"/OpenAction [3 0 R /Fit]", object_stream=b"<< /Producer (scanner) >>")
    r = await stack.http.post(
        "/v1/evidence",
        files={"file": ("继续教育证书 2026.pdf", plain, "application/pdf")},
        headers=person.auth,
    )
    assert r.status_code == 201, r.text
    content = f"/v1/evidence/{r.json()['id']}/content"

    download = await stack.http.get(content, headers=person.auth)
    assert download.status_code == 200 and download.content == plain
    assert download.headers["content-security-policy"] == "sandbox"
    assert download.headers["x-content-type-options"] == "nosniff"
    kind, params = disposition_of(download.headers["content-disposition"])
    assert kind == "attachment"
    assert params["filename*"] == "继续教育证书 2026.pdf"

    preview = await stack.http.get(content, params={"disposition": "inline"}, headers=person.auth)
    assert preview.status_code == 200
    assert preview.headers["content-security-policy"] == "sandbox"
    assert disposition_of(preview.headers["content-disposition"])[0] == "inline"

    wrong = await stack.http.get(content, params={"disposition": "run"}, headers=person.auth)
    assert wrong.status_code == 422


async def test_images_are_served_sandboxed_too(
    stack: Stack, person: Person, tmp_path: Path
) -> None:
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
        b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
        b"\x00\x00\x00\x00IEND\xaeB`\x82" + uuid.uuid4().bytes
    )
    r = await stack.http.post(
        "/v1/evidence", files={"file": ("a.html", png, "text/html")}, headers=person.auth
    )
    assert r.status_code == 201, r.text
    served = await stack.http.get(f"/v1/evidence/{r.json()['id']}/content", headers=person.auth)
    assert served.headers["content-security-policy"] == "sandbox"
    # named by what it is, never saved as a page
    assert disposition_of(served.headers["content-disposition"]) == (
        "attachment",
        {"filename": "a.png"},
    )
