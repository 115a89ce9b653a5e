"""Fixtures for the cgroups tests."""
