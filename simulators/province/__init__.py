"""A simulator of the province continuing-education platform (省平台).

The real province API is not public, so the contract models in :mod:`libs.contracts.province`,
shared with the sync service's client (:mod:`services.sync.province`), are the contract; the
simulator's OpenAPI document (``/docs``, ``/openapi.json``) describes them. One entry point:
``ce serve province`` (``ce run`` starts it too), which builds the app with
:func:`simulators.province.app.create_app`. It keeps its state in a small SQLite file, so it
survives restarts and is the end-to-end truth for "registered exactly once".

It can misbehave on purpose (``PUT /province/admin/faults``, the ``faults`` argument of
``create_simulator_app``, or ``CE_PROVINCE_FAULTS`` as JSON): extra latency, 5xx, hung requests,
429 with ``Retry-After`` above a rate limit, and "duplicate receipts" (the records are stored but
the response is lost, so the client resends). Fault decisions come from a seedable
``random.Random``.

Every write runs synchronously on the event loop in one ``BEGIN IMMEDIATE`` transaction, so two
requests never interleave inside a registration.
"""
