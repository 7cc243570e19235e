"""One vocabulary: every error under ``RemitError``, every reason code in one enum."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import remit
import remit_operator
from remit.errors import RemitError
from remit.policy.decision import Reason


def _modules(package: ModuleType) -> list[ModuleType]:
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI when imported
        found.append(importlib.import_module(info.name))
    return found


def _own_exceptions() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in [*_modules(remit), *_modules(remit_operator)]:
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                classes[f"{module.__name__}.{name}"] = value
    return list(classes.values())


def test_every_error_remit_defines_is_a_remit_error() -> None:
    exceptions = _own_exceptions()
    assert len(exceptions) > 20  # the walk found the tree, not nothing
    outside = [e.__qualname__ for e in exceptions if not issubclass(e, RemitError)]
    assert outside == []


@pytest.mark.parametrize(
    "name",
    ["ProtocolError", "UpstreamError", "ClientGoneError", "EvaluationError", "SettingsError"],
)
def test_the_gateway_and_engine_errors_live_in_the_one_tree(name: str) -> None:
    import remit.errors  # noqa: PLC0415

    error = getattr(remit.errors, name)
    assert issubclass(error, RemitError)


def test_reason_codes_are_one_enum_of_distinct_strings() -> None:
    values = [reason.value for reason in Reason]
    assert len(values) == len(set(values)) == 14
    assert {"internal_error", "expression_error", "rate_limited", "no_bundle"} <= set(values)
    assert all(value == value.lower() for value in values)
