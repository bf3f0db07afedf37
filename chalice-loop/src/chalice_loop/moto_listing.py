"""A listing that a concurrent delete cannot fail, for moto's S3.

moto 5.2.5 lists a bucket by copying its key store and then looking every key up
again (``moto.s3.utils._VersionedKeyStore._iteritems``). A key deleted between the
two raises ``KeyError``, and the server answers the ``ListObjectsV2`` with
``500 Internal Server Error``. S3 never fails a listing that way: a key deleted
while it lists is simply in the page or not. Any app that lists while it deletes
(a cleanup listing key ranges side by side with its deletes) meets it, more often
the busier the machine. :func:`list_from_the_copy` makes the store iterate the
copy's own values, which is what moto's copy is there for.
"""

from collections.abc import Iterator
from typing import Any


def list_from_the_copy() -> None:
    """Patch moto's key store (idempotent); call before its server serves S3."""
    from moto.s3.utils import _VersionedKeyStore

    def items(self: Any) -> Iterator[tuple[str, Any]]:
        for key, versions in self._self_iterable().items():
            if versions:
                yield key, versions[-1]

    def values(self: Any) -> Iterator[Any]:
        for versions in self._self_iterable().values():
            if versions:
                yield versions[-1]

    _VersionedKeyStore.items = _VersionedKeyStore.iteritems = items
    _VersionedKeyStore.values = _VersionedKeyStore.itervalues = values
