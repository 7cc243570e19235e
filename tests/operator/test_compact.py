"""Indexed resources share their sets of field names (remit_operator.compact): soundly."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from remit.api.consentgrant import ConsentGrant
from remit.api.loader import parse
from remit_operator import compact
from remit_operator.compact import Shapes
from remit_operator.index import Index
from remit_operator.intake import essentials, parsed
from tests.support.policies import LATER, grant


def _body(name: str, **spec: object) -> dict[str, object]:
    doc = grant(name, **spec)  # type: ignore[arg-type]
    doc["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="7", generation=1)
    return doc


def _grant(index: Index, name: str, **spec: object) -> ConsentGrant:
    resource = parsed(index, "ConsentGrant", _body(name, **spec), f"agents/{name}")
    assert isinstance(resource, ConsentGrant)
    return resource


def test_grants_of_one_shape_share_one_set_per_model_and_read_the_same() -> None:
    index = Index()
    a, b = _grant(index, "a"), _grant(index, "b", subject="bob@example.com")
    for pick in (lambda g: g, lambda g: g.metadata, lambda g: g.spec):
        assert pick(a).__pydantic_fields_set__ is pick(b).__pydantic_fields_set__
    assert a.spec.model_fields_set == {
        "subject",
        "agent",
        "server",
        "tools",
        "expires_at",
        "granted_by",
        "reason",
    }
    body = _body("b", subject="bob@example.com")
    alone = parse(essentials(body, "ConsentGrant"), "agents/b")
    again = parsed(Index(), "ConsentGrant", body, "agents/b")
    assert again.dump() == alone.dump()
    assert again.model_dump() == alone.model_dump()
    when = _grant(index, "c", when="args.path != ''")
    assert when.spec.__pydantic_fields_set__ is not a.spec.__pydantic_fields_set__
    assert "when" in when.spec.model_fields_set
    assert "when" not in a.spec.model_fields_set


def test_a_shared_set_never_changes_under_another_model() -> None:
    index = Index()
    a, b = _grant(index, "a"), _grant(index, "b")
    before = set(b.spec.model_fields_set)
    with pytest.raises(ValidationError):
        a.spec.revoked = True  # frozen: pydantic refuses, the set is not touched
    copied = a.spec.model_copy(update={"revoked": True, "when": "true"})
    assert {"revoked", "when"} <= copied.model_fields_set
    assert b.spec.model_fields_set == before == a.spec.model_fields_set
    later = a.model_copy(update={"spec": copied}, deep=True)
    assert later.spec.revoked
    assert not b.spec.revoked


class _Loose(BaseModel):
    name: str = ""


def test_models_that_are_not_frozen_keep_their_own_sets() -> None:
    shapes = Shapes()
    one, two = _Loose(name="x"), _Loose(name="y")
    shapes.share(one)
    shapes.share(two)
    assert one.__pydantic_fields_set__ is not two.__pydantic_fields_set__
    one.name = "z"  # still its own
    assert len(shapes) == 0


def test_distinct_shapes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact, "MAX_SHAPES", 3)
    index = Index()
    first = _grant(index, "a")
    assert len(index.shapes) == 3  # the grant's, its metadata's and its spec's
    other = _grant(index, "b", expires_at=LATER + timedelta(days=1), when="true")
    assert len(index.shapes) == 3
    assert other.spec.__pydantic_fields_set__ is not first.spec.__pydantic_fields_set__
    assert "when" in other.spec.model_fields_set
