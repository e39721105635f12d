"""Ingestion: input files -> the append-only raw layer, with lineage and idempotency."""
