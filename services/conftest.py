"""Lets ``pytest services/...`` find the shared fixtures (PostgreSQL, broker) that
``tests/conftest.py`` loads when the whole suite runs; pytest registers each plugin once."""

pytest_plugins = [
    "tests.fixtures.hypothesis_profile",
    "tests.fixtures.broker",
    "tests.fixtures.postgres",
    "tests.fixtures.object_store",
]
