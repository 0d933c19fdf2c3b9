"""Helpers the test suites share: throwaway PostgreSQL databases, real `modgate serve` processes, a
webhook receiver, models for special cases. Not tests themselves."""
