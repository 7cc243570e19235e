"""From a kopf body to the resource the index keeps: only what compiling needs, parsed once.

kopf hands every watch event's whole object to two handlers (index, then event). With 10,000
ConsentGrants, copying whole bodies (``managedFields`` included) and parsing each twice per
event took a large share of the saturated event loop (py-spy: deep copies alone 8% of samples
during the grant burst). So the index keeps a slim document, and an object whose spec has not
changed since it was parsed (a status write, kopf relisting) is not parsed again.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from remit.api.common import API_VERSION, Resource
from remit.api.loader import parse
from remit_operator.index import Index

INDEXED_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation")


def document(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A whole object as a document ``parse`` reads (for a live read, not for the index)."""
    whole = copy.deepcopy(dict(body))
    whole.setdefault("apiVersion", API_VERSION)
    whole.setdefault("kind", kind)
    return whole


def essentials(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What the index keeps of an object: what compiling, signing and status read.

    Not the whole body kopf hands over: ``managedFields``, labels and annotations (``kubectl
    apply`` puts a second copy of the object in one) are read by nothing the index serves,
    and would be kept once per object. Only an MCPServer's status is kept (its serial floor
    and tool pins seed its syncer).
    """
    meta = body.get("metadata") or {}
    document: dict[str, Any] = {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body.get("kind", kind),
        "metadata": {k: meta[k] for k in INDEXED_METADATA if k in meta},
        "spec": copy.deepcopy(body.get("spec")),
    }
    if kind == "MCPServer" and "status" in body:
        document["status"] = copy.deepcopy(body.get("status"))
    return document


def parsed(index: Index, kind: str, body: Mapping[str, Any], key: str) -> Resource:
    """The resource a body describes: the indexed one when the body holds the very spec (and
    uid) it was parsed from, else parsed afresh (raises ``ResourceError``).

    The status writes that follow every change, and kopf's relisting, then cost a digest of
    the spec rather than a parse: with 10,000 grants, parsing twice per event (index handler,
    then event handler) kept the event loop saturated.
    """
    meta = body.get("metadata") or {}
    try:
        spec = orjson.dumps([meta.get("uid"), body.get("spec")], option=orjson.OPT_SORT_KEYS)
        fingerprint: bytes | None = hashlib.blake2b(spec, digest_size=16).digest()
    except TypeError:
        fingerprint = None
    known = index.get(kind, key)
    if known is not None and fingerprint is not None and index.printed(kind, key) == fingerprint:
        return known
    resource = parse(essentials(body, kind), key)
    index.shapes.share(resource)  # thousands of grants: one set of field names, not one each
    index.print(kind, key, fingerprint)
    return resource
