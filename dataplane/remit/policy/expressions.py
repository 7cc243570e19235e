"""CEL conditions: compiled once when a resource loads, evaluated many times per request.

Expressions are checked and compiled by ``remit.celcheck`` (the native
``common-expression-language`` binding); this module evaluates them. Request values
are bound as CEL variables (never formatted into the source). Binding a Python value into a CEL
context costs microseconds, so ``Bindings`` converts each variable lazily, only when a program
that references it runs, and at most once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from remit.celcheck import FUNCTIONS, VARIABLES, ExpressionProblem, cel
from remit.celcheck import check as check_source
from remit.errors import EvaluationError


class Condition:
    """A checked CEL condition that must evaluate to a bool.

    ``program`` is the compiled form. A deferred condition (``deferred()``) was checked and
    then let go of its program; it compiles again on first use and keeps it. Grants use this:
    a bundle may carry 10,000 grant conditions, each checked when the bundle is installed,
    while a pod evaluates only those of the humans its agents act for.
    """

    __slots__ = ("_program", "source", "variables")

    def __init__(self, source: str, program: Any, variables: tuple[str, ...]) -> None:
        self.source = source
        self._program = program
        self.variables = variables

    def deferred(self) -> Condition:
        """This condition without its compiled program (compiled again on first use)."""
        return Condition(self.source, None, self.variables)

    @property
    def program(self) -> Any:
        """The compiled program (compiling a deferred condition now)."""
        if self._program is None:
            self._program = cel.compile(self.source)
        return self._program

    def evaluate(self, bindings: Bindings) -> bool:
        """Evaluate against ``bindings``; raise ``EvaluationError`` on any failure or non-bool."""
        try:
            # Binding can fail too (a value CEL cannot represent): that must deny, not escape.
            result = self.program.execute(bindings.context_for(self.variables))
        except Exception as exc:  # any evaluation failure must deny
            raise EvaluationError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, bool):
            raise EvaluationError(f"condition returned {type(result).__name__}, not bool")
        return result


def check(source: str) -> tuple[Condition | None, ExpressionProblem | None]:
    """Check ``source`` (see ``remit.celcheck``); return the condition, or the problem."""
    checked, problem = check_source(source)
    if checked is None:
        return None, problem
    return Condition(checked.source, checked.program, checked.variables), None


def compile_condition(source: str) -> Condition:
    """Compile an expression already validated at load time (raises ``ValueError`` if not)."""
    condition, problem = check(source)
    if condition is None:
        assert problem is not None
        raise ValueError(problem.reason)
    return condition


class Bindings:
    """The CEL variables of one request, converted into the native context on first use."""

    __slots__ = ("_bound", "_context", "_resolve")

    def __init__(self, resolve: Callable[[str], Any]) -> None:
        self._resolve = resolve
        self._context: Any = None
        self._bound: set[str] = set()

    def context_for(self, names: tuple[str, ...]) -> Any:
        """The native context with at least ``names`` bound."""
        if self._context is None:
            self._context = cel.Context()
        for name in names:
            if name not in self._bound:
                self._context.add_variable(name, self._resolve(name))
                self._bound.add(name)
        return self._context


__all__ = [
    "FUNCTIONS",
    "VARIABLES",
    "Bindings",
    "Condition",
    "EvaluationError",
    "ExpressionProblem",
    "check",
    "compile_condition",
]
