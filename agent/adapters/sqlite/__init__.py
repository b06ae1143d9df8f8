"""sqlite: see docs/architecture.md."""
