"""This app's developer tooling (never deployed).

``devtools.run_local``: ``make run``, the whole story on one machine through the
installed local loop (``chalice-loop``, from ``chalice-loop/``).
``devtools.deploy``: the deploy helpers for this app
(``make bucket``/``deploy``/``destroy``/``package``).
"""
