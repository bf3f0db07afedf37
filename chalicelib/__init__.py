"""Runtime logic of the worker functions (deployed with the app)."""
