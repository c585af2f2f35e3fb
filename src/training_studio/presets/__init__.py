"""Example presets shipped with the app (package data: example-presets.toml)."""
