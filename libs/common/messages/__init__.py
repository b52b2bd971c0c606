"""Message catalogues of the problem documents, one module per language (``zh_CN``, ``en``) keyed
by the problem's ``code``: :func:`title_of` gives a code's title in the language the request asks
for (``Accept-Language``, zh-CN by default); the ``code`` itself never changes."""

from __future__ import annotations

from collections.abc import Mapping

from libs.common.messages import en, zh_CN

DEFAULT_LANGUAGE = "zh-CN"
LANGUAGES = ("zh-CN", "en")
CATALOGUES: Mapping[str, Mapping[str, str]] = {"zh-CN": zh_CN.TITLES, "en": en.TITLES}
# what a code without an entry of its own is called, by its HTTP status
_BY_STATUS: Mapping[str, Mapping[int, str]] = {"zh-CN": zh_CN.BY_STATUS, "en": en.BY_STATUS}


def negotiate(accept_language: str | None) -> str:
    """The catalogue language an ``Accept-Language`` header asks for (RFC 9110 §12.5.4, highest
    q-value first): ``en`` for an English range, ``zh-CN`` for Chinese or ``*``, else the
    default (zh-CN)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > 0:
            ranges.append((-q, position, tag.strip().lower()))
    for _, _, tag in sorted(ranges):
        if tag == "en" or tag.startswith("en-"):
            return "en"
        if tag == "zh" or tag.startswith("zh-") or tag == "*":
            return "zh-CN"
    return DEFAULT_LANGUAGE


def title_of(code: str, status: int, language: str, fallback: str = "") -> str:
    """The title of a problem ``code`` in ``language``: its catalogue entry, else (in English)
    the title the error was raised with, else the catalogue's title of the HTTP status."""
    catalogue = CATALOGUES.get(language, CATALOGUES[DEFAULT_LANGUAGE])
    if code in catalogue:
        return catalogue[code]
    if language == "en" and fallback:
        return fallback
    by_status = _BY_STATUS.get(language, _BY_STATUS[DEFAULT_LANGUAGE])
    return by_status.get(status, by_status[500 if status >= 500 else 400])


def known_codes() -> list[str]:
    """Every code the catalogues name, sorted."""
    return sorted(set(zh_CN.TITLES) | set(en.TITLES))
