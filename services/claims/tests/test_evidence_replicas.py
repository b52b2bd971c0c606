"""Two replicas of claims on one PostgreSQL database, sharing an S3 bucket (a real S3-protocol
server on loopback) and nothing on disk: a file uploaded through one is read through the other,
over HTTP, with the same access check."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.claims.tests.harness import claims_stack, pdf_bytes
from tests.fixtures.object_store import S3_KEY_ID, S3_REGION, S3_SECRET, s3_client


@pytest.mark.postgres
async def test_a_file_uploaded_to_one_replica_is_read_from_the_other(
    tmp_path: Path, make_pg_database: Callable[[str], str], s3_endpoint: str, s3_bucket: str
) -> None:
    url = await asyncio.to_thread(make_pg_database, "claims_replicas")
    shared = {
        "jwt_secret": SecretStr("replicas-share-this-test-secret-of-48-characters"),
        "evidence_store": "s3",
        "s3_endpoint_url": s3_endpoint,
        "s3_region": S3_REGION,
        "s3_bucket": s3_bucket,
        "s3_access_key_id": SecretStr(S3_KEY_ID),
        "s3_secret_access_key": SecretStr(S3_SECRET),
    }
    async with (
        claims_stack(tmp_path / "a", url, **shared) as one,
        claims_stack(tmp_path / "b", url, **shared) as other,
    ):
        district = await one.add_org("district")
        unit = await one.add_org("unit", district)
        other_unit = await one.add_org("unit", district)
        person = await one.register(unit)
        data = pdf_bytes("certificate uploaded to replica one")
        evidence_id = await one.upload(person, data)

        content = f"/v1/evidence/{evidence_id}/content"
        read = await other.http.get(content, headers=person.auth)
        assert read.status_code == 200, read.text
        assert read.content == data
        assert read.headers["content-type"] == "application/pdf"
        # the access check holds on the other replica too
        refused = await other.http.get(content, headers=other.auth("unit_admin", other_unit))
        assert refused.status_code == 404
        assert refused.json()["code"] == "evidence_not_found"

        # the file is in the bucket, not on either replica's disk
        listed = s3_client(s3_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]
        digest = hashlib.sha256(data).hexdigest()
        assert [o["Key"] for o in listed] == [f"evidence/{digest[:2]}/{digest}"]
        for replica_dir in (tmp_path / "a", tmp_path / "b"):
            assert not (replica_dir / "evidence").exists()
