"""Admin YAML: models, loading with line numbers, and validation."""
