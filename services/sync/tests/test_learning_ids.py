"""City-platform learning records (issue 7, items 3 and 4): record ids and ID numbers typed in
full width are folded to ASCII; other Unicode digits and over-long fields are refused per record."""

from __future__ import annotations

import pytest

from libs.common.idnumber import check_character
from services.sync.learning import _valid_learning

FULL_WIDTH_DIGITS = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def new_id_number() -> str:
    first17 = "37040219800101123"
    return first17 + check_character(first17)


def test_city_platform_records_fold_full_width_ids_and_refuse_other_digits() -> None:
    number = new_id_number()
    raw = {
        "record_id": "ｚｚｚｊ－１",
        "id_number": number.translate(FULL_WIDTH_DIGITS),
        "year": 2026,
        "subject": "public",
        "hours": 3,
        "course": "公需科目",
        "completed_at": "2026-06-01T10:00:00+08:00",
    }
    record = _valid_learning(raw)
    assert (record.record_id, record.id_number) == ("zzzj-1", number)
    for bad in (
        {"record_id": "zzzj-١"},
        {"record_id": "r" * 129},
        {"id_number": number.translate(ARABIC_INDIC_DIGITS)},
        {"course": "课" * 301},
    ):
        with pytest.raises(ValueError):
            _valid_learning({**raw, **bad})
