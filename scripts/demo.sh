#!/usr/bin/env bash
# The main job on the embedded DuckDB default: sample data -> ingest -> run -> a late batch -> run.
set -euo pipefail
cd "$(dirname "$0")/.."
SHUKEI=.venv/bin/shukei
rm -rf demo && mkdir -p demo
export SHUKEI_WAREHOUSE=duckdb:///demo/shukei.duckdb
$SHUKEI generate sales demo/data --start 2025-12-01 --days 14 --orders-per-day 500 --seed 7
$SHUKEI ingest sales demo/data
$SHUKEI run sales
echo
echo "== a late delivery arrives: new orders for old dates, corrections, cancellations, moves"
$SHUKEI generate sales demo/late --late-batch --start 2025-12-01 --days 14 --orders-per-day 500 \
  --seed 7 --batch-seed 1 --lines 400 --corrections 60
$SHUKEI ingest sales demo/late
$SHUKEI ingest sales demo/data   # re-sent files: a no-op that says so
$SHUKEI run sales                # rebuilds exactly the dates the late batch touched
$SHUKEI status sales
$SHUKEI diff sales
