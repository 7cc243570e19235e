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
    assert len(values) == len(set(values)) == 35
    assert {"internal_error", "expression_error", "rate_limited", "no_bundle"} <= set(values)
    assert all(value == value.lower() for value in values)


def _public_names() -> dict[str, list[str]]:
    """Top-level classes and type aliases each module defines itself, by name."""
    owners: dict[str, list[str]] = {}
    for module in [*_modules(remit), *_modules(remit_operator)]:
        source = inspect.getsource(module)
        for name, value in vars(module).items():
            defined_here = (
                inspect.isclass(value) and value.__module__ == module.__name__
            ) or f"\n{name} = Literal[" in source
            if defined_here and not name.startswith("_"):
                owners.setdefault(name, []).append(module.__name__)
    return owners


@pytest.mark.parametrize(
    "name",
    ["Outcome", "Decision", "GrantRef", "Condition", "ServerSettings", "Upstream", "Effect"],
)
def test_each_name_means_one_thing(name: str) -> None:
    owners = _public_names()
    assert len(owners.get(name, [])) == 1, owners.get(name)


def test_times_are_written_by_the_one_formatter() -> None:
    offenders = [
        module.__name__
        for module in [*_modules(remit), *_modules(remit_operator)]
        if module.__name__ != "remit.times" and '"+00:00"' in inspect.getsource(module)
    ]
    assert offenders == []


def test_the_time_formatter_writes_utc_with_a_z() -> None:
    from datetime import UTC, datetime, timedelta, timezone  # noqa: PLC0415

    from remit.times import utc_text  # noqa: PLC0415

    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert utc_text(moment) == "2026-01-02T03:04:05.678901Z"
    assert utc_text(moment, "milliseconds") == "2026-01-02T03:04:05.678Z"
    assert utc_text(moment, "seconds") == "2026-01-02T03:04:05Z"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert utc_text(plus_two) == "2026-01-02T03:04:05.678901Z"
