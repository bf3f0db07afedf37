"""The embedded S3 answers ``ListObjectsV2`` byte for byte as moto's own serializer does.

Each listing is asked of moto's WSGI app in this process (no server, no socket),
once through :func:`answer_listings_directly` and once through moto's serializer.
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from chalice_loop import moto_list_answer
from chalice_loop.moto_list_answer import answer_listings_directly
from moto.backends import get_backend
from moto.moto_server.werkzeug_app import create_backend_app
from moto.s3.responses import S3Response
from werkzeug.test import Client

BUCKET = "listing-answers"
KEYS = [
    "reports/2026-11-30/0001.json",
    "reports/2026-11-30/0002.json",
    "reports/2026-12-01/a&b<c>d\"e'f.json",  # what XML escapes, and what it leaves
    "reports/2026-12-01/é ü 日本.txt",
    "reports/2026-12-01/tab\there",  # not printable: moto's own serializer writes it
    "scans/dune.jpg",
    "top-level.txt",
]
QUERIES = [
    "",
    "&prefix=reports/",
    "&prefix=reports/2026-12-01/",
    "&prefix=nothing-here/",  # no objects: moto's own answer
    "&delimiter=/",
    "&prefix=reports/&delimiter=/",
    "&max-keys=2",
    "&max-keys=1&start-after=reports/2026-11-30/0001.json",
    "&encoding-type=url",
    "&encoding-type=url&delimiter=/&prefix=reports/",
    "&fetch-owner=true",
    "&fetch-owner=true&max-keys=3&prefix=reports/",
]


@pytest.fixture(scope="module")
def s3_app() -> Iterator[Client]:
    client = Client(create_backend_app("s3"))
    assert client.put(f"/{BUCKET}").status_code == 200
    for n, key in enumerate(KEYS):
        headers = {"x-amz-checksum-sha256": ""} if n % 3 else {}
        headers = {"x-amz-sdk-checksum-algorithm": "SHA256"} if n % 3 == 1 else headers
        body = f"object {n}".encode() * (n + 1)
        answer = client.put(f"/{BUCKET}/{quote(key)}", data=body, headers=headers)
        assert answer.status_code == 200, answer.text
    yield client
    get_backend("s3")["123456789012"]["aws"].reset()


def both_answers(client: Client, url: str) -> tuple[Any, Any]:
    answer_listings_directly()
    answer_listings_directly()  # idempotent
    direct = S3Response.serialized
    assert direct.general is not direct
    ours = client.get(url)
    S3Response.serialized = direct.general
    try:
        theirs = client.get(url)
    finally:
        S3Response.serialized = direct
    return ours, theirs


def headers(answer: Any) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.lower() not in {"x-amzn-requestid"}}


@pytest.mark.parametrize("query", QUERIES)
def test_a_listing_is_answered_exactly_as_moto_answers_it(s3_app, query):
    url = f"/{BUCKET}?list-type=2{query}"
    ours, theirs = both_answers(s3_app, url)
    assert (ours.status_code, headers(ours)) == (theirs.status_code, headers(theirs))
    assert ours.data == theirs.data
    token = "<NextContinuationToken>"
    if token in ours.text:  # the next page too
        after = ours.text.split(token)[1].split("<")[0]
        ours, theirs = both_answers(s3_app, f"{url}&continuation-token={after}")
        assert ours.data == theirs.data


def test_plain_objects_are_written_directly_and_the_rest_by_moto(s3_app, monkeypatch):
    written: list[str] = []
    write = moto_list_answer._contents

    def counting(item: dict[str, Any], last_modified: Any) -> str:
        written.append(item["Key"])
        return write(item, last_modified)

    monkeypatch.setattr(moto_list_answer, "_contents", counting)
    both_answers(s3_app, f"/{BUCKET}?list-type=2&prefix=reports/2026-11-30/")
    assert written == KEYS[:2]  # once: moto's own serializer wrote the other answer
    written.clear()
    both_answers(s3_app, f"/{BUCKET}?list-type=2&prefix=reports/2026-12-01/t")
    assert written == []  # a key with a tab: moto's serializer, as before
