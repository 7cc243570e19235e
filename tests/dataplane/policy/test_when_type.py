"""A `when` must be boolean: what `non_boolean` flags, and what it must let pass.

The CEL binding has no type checker; a constant is evaluated, anything else is read off the top
of its syntax. A false alarm would fail `remit validate --strict` on a good policy, so the
passing cases matter as much as the flagged ones.
"""

from __future__ import annotations

import pytest

from remit.celcheck import non_boolean


@pytest.mark.parametrize(
    "source",
    ['"EU"', "1 + 2", "[1, 2]", '{"a": 1}', "size(args.path)", "args.n + 1", "args.n - 1",
     "-args.n", "string(args.n)", "args.items.map(x, x)", 'subject.groups.filter(g, g == "x")',
     "args.n > 1 ? 1 : 2", "(size(args.path))", "timestamp(args.at)"],
)  # fmt: skip
def test_non_boolean_results_are_flagged(source: str) -> None:
    assert non_boolean(source) is not None


@pytest.mark.parametrize(
    "source",
    ['args.path.startsWith("/data/")', "args.flag", "args.list[0]", "!args.ok", "has(args.x)",
     '"a" in args.list', 'args.a == "x+y"', "(args.a || args.b)", "args.n == 1e-5",
     "args.items.exists(x, x == 1)", "args.n > 1 ? true : args.ok", "(size(args.x)) > 2",
     "true", "now > timestamp('2026-01-01T00:00:00Z')", 'args.path.matches("^/a-b")',
     "args.n - 1 > 0", "dyn(args.x)", "args.path.endsWith('-x')"],
)  # fmt: skip
def test_boolean_or_undecidable_results_pass(source: str) -> None:
    assert non_boolean(source) is None
