"""Pipeline definitions: a folder with `pipeline.toml` plus SQL files, loaded and validated."""
