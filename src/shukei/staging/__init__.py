"""Staging: typed, cleaned, latest version per key; quarantine for what cannot be used."""
