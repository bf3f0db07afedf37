"""The embedded endpoint sends every request to the backend moto's own dispatch picks,
without listing moto's package folder on each request."""

import os

import pytest
from chalice_loop.moto_dispatch import list_backends_once
from moto import backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

MOTO_LISTING = getattr(backends.list_of_moto_modules, "general", backends.list_of_moto_modules)
HOSTS = [
    *MOTO_LISTING(),  # each backend by its package name, as moto's dispatch looks it up
    "s3.us-east-1.amazonaws.com",
    "s3.eu-west-1.amazonaws.com",
    "bucket-a.s3.us-east-1.amazonaws.com",
    "sqs.us-east-1.amazonaws.com",
    "sns.us-east-1.amazonaws.com",
    "events.us-east-1.amazonaws.com",
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "logs.us-east-1.amazonaws.com",
    "moto_api",
    "__pycache__",  # a folder in moto's package that is not a backend
    "not-a-service",
    None,
]


@pytest.fixture
def dispatcher():
    list_backends_once()
    list_backends_once()  # idempotent: patching twice wraps nothing twice
    return DomainDispatcherApplication(create_backend_app)


def test_patching_keeps_moto_s_own_listing_underneath(dispatcher):
    assert backends.list_of_moto_modules.general is MOTO_LISTING
    assert list(backends.list_of_moto_modules()) == list(MOTO_LISTING())


def test_each_host_goes_to_the_backend_moto_picks(dispatcher):
    patched = backends.list_of_moto_modules
    try:
        backends.list_of_moto_modules = MOTO_LISTING
        expected = {host: dispatcher.get_backend_for_host(host) for host in HOSTS}
    finally:
        backends.list_of_moto_modules = patched
    assert {host: dispatcher.get_backend_for_host(host) for host in HOSTS} == expected
    assert expected["s3.us-east-1.amazonaws.com"] == "s3"  # the hosts are real ones


def test_a_request_lists_no_folder(dispatcher, monkeypatch):
    def listing_refused(path: str) -> list[str]:
        raise AssertionError(f"listed {path} while dispatching a request")

    monkeypatch.setattr(os, "listdir", listing_refused)
    assert dispatcher.get_backend_for_host("s3") == "s3"
    assert dispatcher.get_backend_for_host("s3.us-east-1.amazonaws.com") == "s3"
