"""Developer tooling (never deployed), in two rooms.

``devtools.local_lambda``: the local Lambda loop for any Chalice app
(``python -m devtools``, ``make run``). ``devtools.deploy``: the deploy helpers
for this app (``make bucket``/``deploy``/``destroy``/``package``).
"""
