"""Developer tooling for running the app locally (never deployed)."""
