"""Headers of a response that is a file: ``Content-Disposition`` (RFC 6266) with the name in
RFC 5987 form, and the headers every served user file carries.

Every route that sends a file builds its ``Content-Disposition`` with :func:`content_disposition`:
a name made of anyone's data (an org code, a certificate code, an uploaded file's name) is first
sanitised (no quotes, backslashes, separators or control characters, bounded length), then sent
twice: ``filename="…"`` in ASCII for old clients and ``filename*=UTF-8''…`` percent-encoded for
everyone else, so a Chinese name neither breaks the latin-1 header encoding (a 500) nor, with a
``"`` or ``;``, injects parameters of its own.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal
from urllib.parse import quote

# control characters, the path separators, quotes and the characters a header parameter ends at
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\"\';,:*?<>|]+')
_SPACES = re.compile(r"\s+")
_NOT_ASCII_TOKEN = re.compile(r"[^A-Za-z0-9._ ()+=@#&!~\[\]{}$^`-]+")
# RFC 5987 attr-char beside ALPHA and DIGIT (everything else is percent-encoded)
_ATTR_CHARS = "!#$&+-.^_`|~"
MAX_FILENAME_CHARS = 120
FALLBACK_NAME = "download"


def safe_filename(name: str, *, default: str = FALLBACK_NAME) -> str:
    """``name`` without control characters, path separators, quotes or parameter delimiters,
    whitespace collapsed, no leading dots, at most :data:`MAX_FILENAME_CHARS` characters (the
    extension kept); ``default`` if nothing is left."""
    cleaned = _SPACES.sub(" ", _UNSAFE.sub("_", unicodedata.normalize("NFC", name))).strip()
    cleaned = cleaned.lstrip(". ")
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            cleaned = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_FILENAME_CHARS]
    return cleaned or default


def ascii_filename(name: str) -> str:
    """The ASCII fallback of a sanitised name: accented letters lose their accents, every other
    run of characters outside a plain token becomes one ``_`` (``枣庄-1.csv`` → ``_-1.csv``)."""
    chars = []
    for char in name:
        plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
        chars.append(plain if plain and not _NOT_ASCII_TOKEN.search(plain) else "_")
    folded = re.sub(r"_+", "_", "".join(chars))
    return folded if folded.strip("._ -") else FALLBACK_NAME


def content_disposition(
    filename: str, disposition: Literal["attachment", "inline"] = "attachment"
) -> str:
    """The ``Content-Disposition`` value for a file named ``filename``: ``attachment`` (saved)
    or ``inline`` (shown), with an ASCII ``filename`` and the exact UTF-8 ``filename*``."""
    name = safe_filename(filename)
    fallback = ascii_filename(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def file_headers(
    filename: str, disposition: Literal["attachment", "inline"] = "attachment"
) -> dict[str, str]:
    """Headers of a generated document (a PDF, an export): its disposition and ``nosniff``."""
    return {
        "Content-Disposition": content_disposition(filename, disposition),
        "X-Content-Type-Options": "nosniff",
    }
