"""``make bench``: what the cleanup and the worker cost, measured (never deployed)."""
