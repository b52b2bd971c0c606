"""Contracts with systems outside the platform, shared by our adapters and their simulators."""
