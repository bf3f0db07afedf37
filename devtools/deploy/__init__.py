"""Deploy helpers for this app (never deployed themselves).

This room turns ``infra/`` and ``.chalice/`` into what AWS runs: the bucket stack
of deploy path 1 (``bucket_stack``), the generated merge template
(``merge_template``) and ``chalice package`` with the bucket merged in
(``package``) for path 2.
"""
