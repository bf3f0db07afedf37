"""moto's server, deciding which service a request is for without listing its package.

moto 5.2.5 decides that afresh on every request, and one step of it is
``host in list_of_moto_modules()``: a listing of moto's own package folder with a
``stat`` of each of its ~170 entries, about 1 ms of CPU per request, half of it in
the kernel. :func:`list_backends_once` lists the folder once, when the server
starts: the installed package does not change while it serves, so every request is
sent to the same backend as before.
"""

from collections.abc import Iterable


def list_backends_once() -> None:
    """Patch moto's backend listing (idempotent); call before its server serves."""
    from moto import backends

    current = backends.list_of_moto_modules
    general = getattr(current, "general", current)
    names = tuple(general())

    def list_of_moto_modules() -> Iterable[str]:
        return names

    list_of_moto_modules.general = general  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules
