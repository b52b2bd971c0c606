"""English (en): the titles of the problem documents, keyed by ``code``. A code raised with a
title of its own and not listed here keeps that title in English."""

from __future__ import annotations

TITLES: dict[str, str] = {
    "bad_request": "Bad request",
    "validation_error": "The request does not match the schema",
    "unauthorized": "Authentication required",
    "missing_token": "Authentication required",
    "invalid_token": "Authentication required",
    "forbidden": "Forbidden",
    "role_not_allowed": "Forbidden",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "conflict": "Conflict",
    "payload_too_large": "The request body is too large",
    "rate_limited": "Too many requests",
    "internal_error": "Internal server error",
    "service_unavailable": "Service temporarily unavailable",
    "temporarily_unavailable": "Temporarily unavailable",
    "rule_violation": "A rule of the continuing-education notice refuses this",
}

# a code without an entry of its own (nor a title it was raised with): its title by HTTP status
BY_STATUS: dict[int, str] = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "The request body is too large",
    422: "A rule refuses the request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service temporarily unavailable",
}
