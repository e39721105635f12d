"""Extraction from an operational PostgreSQL database into the normal ingest path.

`source_db` creates and fills a demo operational database (`shukei source init`); `extract`
streams new and changed rows (by `updated_at` watermark, with an overlap window) into Parquet (or
CSV) files in a staging area (`staging_area`: a local folder or `s3://`); `sync` chains extract,
ingest and run. Metrics go to the warehouse, a Prometheus textfile and one JSON log line. See
docs/extract.md.
"""

from __future__ import annotations

TABLES: tuple[str, ...] = ("customers", "products", "orders", "order_items")
"""The operational tables, in extraction order (parents before children)."""
