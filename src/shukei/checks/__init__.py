"""Declarative quality checks: each is a query returning the offending rows (zero rows = pass)."""
