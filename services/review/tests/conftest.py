"""One running review app per test module (see ``support.review_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.review.tests.support import Review, review_app


@pytest.fixture(scope="module")
async def review(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Review]:
    async with review_app(tmp_path_factory.mktemp("review-api")) as r:
        yield r
