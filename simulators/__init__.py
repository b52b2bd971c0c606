"""Stand-ins for the external systems the platform talks to, for development and tests."""
