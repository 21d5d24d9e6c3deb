"""Fixtures for multi-server Redis topologies (three independent masters, a Redis Cluster).

Filled in by the lock-library work; registered for every test package in tests/conftest.py.
"""
