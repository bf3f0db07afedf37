"""The embedded S3's listing survives a delete in the middle of it, as S3's does."""

from chalice_loop.moto_listing import list_from_the_copy
from moto.s3.utils import _VersionedKeyStore


class Version(str):
    """A stored version, as the store holds moto's objects: it disposes of it on delete."""

    def dispose(self) -> None:
        pass


def store_of(keys: list[str]) -> _VersionedKeyStore:
    store = _VersionedKeyStore()
    for key in keys:
        store[key] = Version(f"object {key}")
    return store


def test_a_key_deleted_while_the_bucket_is_listed_does_not_fail_the_listing():
    list_from_the_copy()
    keys = [f"reports/2026-11-30/{n:04d}.json" for n in range(10)]
    store = store_of(keys)
    listed = []
    for key, value in store.items():
        listed.append((key, value))
        if len(listed) == 3:
            for gone in keys[3:6]:  # a delete of keys the listing has not reached yet
                store.pop(gone)
    # moto's own listing looked each key up again and raised KeyError here (a 500).
    assert listed == [(k, f"object {k}") for k in keys]  # the snapshot the listing began with
    assert list(store.values()) == [f"object {k}" for k in keys[:3] + keys[6:]]
    assert sorted(store) == sorted(keys[:3] + keys[6:])
