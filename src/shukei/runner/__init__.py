"""Plan dirty partitions, rebuild them atomically, and keep the run state and diff ledger."""
