"""moto's ``ListObjectsV2`` answer, written directly.

moto 5.2.5 serialises each listed object through its generic, model-driven
serializer: on a 1,000-key page that took about 0.3 s of the server's CPU, the
largest single cost of a test suite that lists often. :func:`answer_listings_directly`
lets moto build the answer without the objects, then writes each object's
``<Contents>`` element itself, byte for byte as moto would, where the object has
only the members moto lists (``Key``, ``LastModified``, ``ETag``,
``ChecksumAlgorithm``, ``Size``, ``StorageClass``, ``Owner``). Anything else goes
through moto's own serializer, as before.
"""

from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

_MEMBERS = frozenset({"Key", "LastModified", "ETag", "Size"})
_OPTIONAL = frozenset({"ChecksumAlgorithm", "StorageClass", "Owner"})
_AFTER = "</IsTruncated>"  # moto's first member: the objects follow it


def answer_listings_directly() -> None:
    """Patch moto's S3 responses (idempotent); call before its server serves S3."""
    from moto.core.responses import ActionResult
    from moto.core.serialize import S3Serializer, TimestampSerializer
    from moto.s3.responses import S3Response

    serialized = getattr(S3Response.serialized, "general", S3Response.serialized)
    timestamps = TimestampSerializer(S3Serializer.DEFAULT_TIMESTAMP_FORMAT)

    def last_modified(value: Any) -> str:
        return timestamps._convert_timestamp_to_str(value, timestamps.default_format)

    def answer(self: Any, action_result: Any) -> Any:
        result = action_result.result
        contents = _plain_contents(self, result)
        if contents is None:
            return serialized(self, action_result)
        rest = {name: value for name, value in result.items() if name != "Contents"}
        status, headers, body = serialized(self, ActionResult(rest))
        at = body.find(_AFTER)
        if at < 0:
            return serialized(self, action_result)
        at += len(_AFTER)
        objects = "".join(_contents(item, last_modified) for item in contents)
        return status, headers, body[:at] + objects + body[at:]

    answer.general = serialized  # type: ignore[attr-defined]
    S3Response.serialized = answer


def _plain_contents(response: Any, result: Any) -> list[dict[str, Any]] | None:
    """The listed objects, if this is a listing this module writes as moto would."""
    if response.data.get("Action") != "ListObjectsV2" or not isinstance(result, dict):
        return None
    contents = result.get("Contents")
    if not contents or not all(_plain(item) for item in contents):
        return None
    return contents


def _plain(item: Any) -> bool:
    if not isinstance(item, dict) or not _MEMBERS <= item.keys() <= _MEMBERS | _OPTIONAL:
        return False
    algorithms = item.get("ChecksumAlgorithm", [])
    if not isinstance(algorithms, list):
        return False
    texts = [item["Key"], item["ETag"], *algorithms]
    if "StorageClass" in item:
        texts.append(item["StorageClass"])
    if "Owner" in item:
        owner = item["Owner"]
        if not isinstance(owner, dict) or owner.keys() != {"ID", "DisplayName"}:
            return False
        texts += [owner["DisplayName"], owner["ID"]]
    size = item["Size"]
    return (
        isinstance(size, int)
        and not isinstance(size, bool)
        and isinstance(item["LastModified"], str)
        and all(isinstance(text, str) and _text(text) for text in texts)
    )


def _text(text: str) -> bool:
    """Text that moto's XML writer escapes only as ``escape`` does."""
    return bool(text) and text.isprintable()


def _contents(item: dict[str, Any], last_modified: Callable[[Any], str]) -> str:
    parts = [
        "<Contents><Key>",
        escape(item["Key"]),
        "</Key><LastModified>",
        last_modified(item["LastModified"]),
        "</LastModified><ETag>",
        escape(item["ETag"]),
        "</ETag>",
    ]
    for algorithm in item.get("ChecksumAlgorithm", []):
        parts += ["<ChecksumAlgorithm>", escape(algorithm), "</ChecksumAlgorithm>"]
    parts += ["<Size>", str(item["Size"]), "</Size>"]
    if "StorageClass" in item:
        parts += ["<StorageClass>", escape(item["StorageClass"]), "</StorageClass>"]
    if "Owner" in item:
        owner = item["Owner"]
        parts += ["<Owner><DisplayName>", escape(owner["DisplayName"]), "</DisplayName>"]
        parts += ["<ID>", escape(owner["ID"]), "</ID></Owner>"]
    parts.append("</Contents>")
    return "".join(parts)
