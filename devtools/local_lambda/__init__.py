"""The local Lambda loop, for any Chalice app (never deployed).

This room runs ``@app.lambda_function`` and ``@app.schedule`` functions on one
machine the way Lambda would: ``python -m devtools`` (invoke/up/logs/schedules,
in ``cli``), the embedded S3, the scheduler, the local logs, and ``make run``
(``run_local``). Nothing here knows about this app in particular.
"""
