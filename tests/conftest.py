"""Shared fixtures. Fixture modules live in tests/fixtures/ and are loaded here."""

pytest_plugins = [
    "tests.fixtures.hypothesis_profile",
    "tests.fixtures.broker",
    "tests.fixtures.postgres",
    "tests.fixtures.private_postgres",
    "tests.fixtures.object_store",
]
