"""CEL conditions: compiled and checked at load time, evaluated lazily per request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from remit.policy.expressions import (
    VARIABLES,
    Bindings,
    EvaluationError,
    check,
    compile_condition,
)
from tests.support.policies import call, engine_for, policy, rule


def _bindings(values: dict[str, Any], calls: list[str] | None = None) -> Bindings:
    def resolve(name: str) -> Any:
        if calls is not None:
            calls.append(name)
        return values[name]

    return Bindings(resolve)


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_the_engine_binds_every_declared_variable(name: str) -> None:
    # A variable the checker accepts but the engine's resolver does not bind would fail every
    # condition that uses it at run time (expression_error); each one must evaluate.
    engine = engine_for(policy("p", rule("r", tools=["t"], when=f"{name} == {name}")))
    decision = engine.decide(call("t", {"x": 1}))
    assert (decision.effect, decision.reason) == ("allow", "allowed"), decision.message


def test_the_variables_the_docs_promise_are_declared() -> None:
    assert {"subject", "agent", "tool", "resource", "prompt", "args", "server", "now"} == set(
        VARIABLES
    )


@pytest.mark.parametrize(
    "source",
    [
        'args.path.startsWith("/data/")',
        "size(args.body) <= 2000",
        "has(args.path) && args.path.endsWith('.md')",
        '"support" in subject.groups',
        'subject.id == "alice" && subject.issuer.startsWith("https://")',
        'subject.claims.tier == "gold"',
        'agent.id == "bot" && size(agent.chain) == 0',
        'tool.name.matches("^read_") && tool.annotations.readOnlyHint',
        'server.name == "files" && server.namespace == "agents"',
        'now.getHours() >= 7 && now < timestamp("2100-01-01T00:00:00Z")',
        'now - duration("1h") > timestamp("2020-01-01T00:00:00Z")',
        "args.items.all(x, x > 0)",
        "args.items.exists(y, y == 1) || args.items.exists_one(z, z == 2)",
        "args.items.map(v, v + 1).filter(w, w > 2).size() > 0",
        "args.n > 1 ? true : false",
        'args["key with space"] == int("3")',
    ],
)
def test_valid_conditions_compile(source: str) -> None:
    condition, problem = check(source)
    assert problem is None
    assert condition is not None
    assert condition.source == source
    assert set(condition.variables) <= set(VARIABLES)


def test_condition_records_only_the_request_variables_it_uses() -> None:
    condition = compile_condition("args.items.all(x, x > 0) && now.getHours() > 1")
    assert sorted(condition.variables) == ["args", "now"]


@pytest.mark.parametrize(
    ("source", "reason", "position"),
    [
        ("args.path ==", "Syntax error", 12),
        ('args.path == "a" &&& true', "Syntax error", 19),
        ("request.path", "unknown variable 'request'", 0),
        ("args.ok && reqest.ok", "unknown variable 'reqest'", 11),
        ('args.x == "foo" && foo', "unknown variable 'foo'", 19),  # not the string "foo"
        ("args.x.lowerAscii() == 'a'", "unknown function 'lowerAscii'", 7),
        ("'x'.foo(1) || args.y.foo(2)", "unknown function 'foo'", 4),
    ],
)
def test_invalid_conditions_report_reason_and_position(
    source: str, reason: str, position: int
) -> None:
    condition, problem = check(source)
    assert condition is None
    assert problem is not None
    assert reason in problem.reason
    assert problem.position == position


def test_position_on_a_later_line_is_an_offset_into_the_source() -> None:
    source = "args.x &&\n  args.y ="
    _, problem = check(source)
    assert problem is not None
    assert problem.position is not None
    assert source[problem.position :].startswith("=")


def test_comprehension_variable_used_outside_its_macro_is_unknown() -> None:
    source = "args.items.all(x, x > 0) && x == 1"
    _, problem = check(source)
    assert problem is not None
    assert "unknown variable 'x'" in problem.reason
    assert problem.position == source.rindex("x")


def test_comprehension_variables_in_nested_macros_are_in_scope() -> None:
    condition, problem = check("args.rows.all(r, r.cells.exists(c, c == r.key))")
    assert problem is None
    assert condition is not None


def test_compile_condition_raises_for_invalid_source() -> None:
    with pytest.raises(ValueError, match="unknown variable 'nope'"):
        compile_condition("nope == 1")


def test_evaluate_true_false_and_with_all_variables() -> None:
    condition = compile_condition(
        'subject.id == "alice" && "support" in subject.groups && agent.id == "bot"'
        ' && tool.name == "write_file" && args.path.startsWith("/data/")'
        ' && server.name == "files" && now.getHours() == 10'
    )
    values: dict[str, Any] = {
        "subject": {"id": "alice", "issuer": "", "groups": ["support"], "claims": {}},
        "agent": {"id": "bot", "chain": []},
        "tool": {"name": "write_file", "annotations": {}},
        "args": {"path": "/data/x"},
        "server": {"name": "files", "namespace": "agents"},
        "now": datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
    }
    assert condition.evaluate(_bindings(values)) is True
    values["args"] = {"path": "/etc/passwd"}
    assert condition.evaluate(_bindings(values)) is False


@pytest.mark.parametrize(
    ("source", "args"),
    [
        ("args.path.startsWith('/')", {}),  # missing key
        ("args.path.startsWith('/')", {"path": 3}),  # wrong type
        ("args.n + 1 > 0", {"n": "x"}),
        ("args.n", {"n": 1}),  # not a bool
        ("args.n / 0 == 1", {"n": 1}),
        ("args.n == 1", {"n": {1, 2}}),  # a value CEL cannot bind
        ("args.n == 1", {"n": object()}),
    ],
)
def test_evaluation_failures_raise_evaluation_error(source: str, args: dict[str, Any]) -> None:
    condition = compile_condition(source)
    with pytest.raises(EvaluationError):
        condition.evaluate(_bindings({"args": args}))


def test_bindings_resolve_each_variable_lazily_and_once() -> None:
    calls: list[str] = []
    bindings = _bindings({"args": {"a": 1}, "now": datetime(2026, 1, 1, tzinfo=UTC)}, calls)
    first = compile_condition("args.a == 1")
    second = compile_condition("args.a == 1 && now.getFullYear() == 2026")
    assert calls == []
    assert first.evaluate(bindings) is True
    assert calls == ["args"]
    assert second.evaluate(bindings) is True
    assert first.evaluate(bindings) is True
    assert calls == ["args", "now"]


def test_expression_source_is_never_formatted_with_request_values() -> None:
    condition = compile_condition('args.path == "/data/x"')
    injected = {"path": '/data/x" || true || "'}
    assert condition.evaluate(_bindings({"args": injected})) is False


def test_deferred_condition_compiles_on_first_use_and_decides_the_same() -> None:
    condition = compile_condition('args.path.startsWith("/data/")')
    deferred = condition.deferred()
    assert deferred._program is None  # checked, but holding no compiled program
    for path, expected in (("/data/a", True), ("/etc/passwd", False)):
        bindings = _bindings({"args": {"path": path}})
        assert deferred.evaluate(bindings) is expected
        assert condition.evaluate(bindings) is expected
    assert deferred._program is not None  # kept after the first use
