"""Helpers shared by the test suites: real server processes, Redis, synthetic images."""
