"""Indexed resources share what thousands of them repeat: pydantic's set of fields given.

Every pydantic model keeps ``__pydantic_fields_set__``, the names of the fields its document
gave: a ``set`` of its own per model, 216 bytes for up to four names and 728 from five. A
ConsentGrant is three models (the resource, its metadata, its spec), so at 10,000 grants these
sets alone held about 17 MB of the operator's memory (``benchmarks/bench_operator_scale.py``:
RSS over the 256 MiB target), though grants written by the same tool give the very same names.

``share`` makes every model of a resource use one set per distinct set of names. This is sound
only for frozen models, which pydantic never changes in place: assignment is refused, and
``model_copy`` copies the set before adding the updated names. So ``share`` leaves any model
that is not frozen (and everything under it) as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

MAX_SHAPES = 4096  # distinct sets kept; past that, a model keeps its own (memory stays bounded)


class Shapes:
    """One shared ``set`` per distinct set of field names (per operator run)."""

    def __init__(self) -> None:
        self._sets: dict[frozenset[str], set[str]] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def _shared(self, names: set[str]) -> set[str]:
        key = frozenset(names)
        found = self._sets.get(key)
        if found is None:
            if len(self._sets) >= MAX_SHAPES:
                return names
            found = self._sets[key] = names
        return found

    def share(self, model: BaseModel) -> None:
        """Make ``model`` and the frozen models it holds use the shared sets."""
        if not model.model_config.get("frozen"):
            return
        fields = model.__pydantic_fields_set__
        shared = self._shared(fields)
        if shared is not fields:
            object.__setattr__(model, "__pydantic_fields_set__", shared)
        for value in model.__dict__.values():
            for inner in _models(value):
                self.share(inner)


def _models(value: Any) -> Iterable[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
    elif isinstance(value, list | tuple):
        yield from (v for v in value if isinstance(v, BaseModel))
    elif isinstance(value, dict):
        yield from (v for v in value.values() if isinstance(v, BaseModel))
