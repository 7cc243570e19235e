"""CEL conditions: compiled once when a resource loads, evaluated many times per request.

Expressions are compiled by the native ``common-expression-language`` binding. Request values
are bound as CEL variables (never formatted into the source). Binding a Python value into a CEL
context costs microseconds, so ``Bindings`` converts each variable lazily, only when a program
that references it runs, and at most once per request.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from remit.errors import EvaluationError


def _native_cel() -> ModuleType:
    """The binding's native module, without its package ``__init__``.

    ``import cel`` also imports the package's interactive CLI (prompt_toolkit, rich): about
    24 MiB of resident memory in every gateway sidecar for nothing the gateway uses. Loading the
    extension module by itself gives the same ``compile`` and ``Context``; if the package
    layout ever changes, fall back to the ordinary import.
    """
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("cel")
    if spec is not None and spec.origin is not None:
        for library in sorted(Path(spec.origin).parent.glob("cel.*.so")):
            loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(library))
            native = importlib.util.spec_from_file_location("cel.cel", library, loader=loader)
            if native is not None:
                module = importlib.util.module_from_spec(native)
                loader.exec_module(module)
                if hasattr(module, "compile") and hasattr(module, "Context"):
                    # A native module initialises once per process: a later ``import cel``
                    # must find this one instead of loading the library again.
                    sys.modules["cel.cel"] = module
                    return module
    import cel  # noqa: PLC0415 - fallback

    return cel


cel = _native_cel()

# Variables a condition may reference, and what each holds.
VARIABLES: Mapping[str, str] = {
    "subject": "the human: id, issuer, groups, claims",
    "agent": "the acting agent: id, chain",
    "tool": "the tool: name, annotations",
    "resource": "the resource: uri",
    "prompt": "the prompt: name",
    "args": "the call's arguments (a map)",
    "server": "the MCP server: name, namespace",
    "now": "the time of the request (timestamp)",
}

# Functions of the native CEL standard library (the binding's Python extras are not enabled:
# they run as Python callbacks on the hot path). Operators appear as ``_+_``, ``@in``, ``!_``.
FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
        "string", "bytes", "timestamp", "duration", "dyn", "type", "has", "all", "exists",
        "exists_one", "map", "filter", "getFullYear", "getMonth", "getDayOfYear",
        "getDayOfMonth", "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds",
        "getMilliseconds",
    }
)  # fmt: skip

_POSITION = re.compile(r"<input>:(\d+):(\d+):")
# String literals, blanked out before searching the source for names (a name inside a string
# is neither a variable's position nor a macro binding).
_STRING = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'")
_MACRO = r"\.\s*(?:all|exists|exists_one|map|filter|transformList|transformMap)\s*\(\s*{name}\s*,"


@dataclass(frozen=True, slots=True)
class ExpressionProblem:
    """Why an expression was rejected, and where (0-based character offset, if known)."""

    reason: str
    position: int | None


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


def _offset(source: str, line: int, column: int) -> int:
    """0-based offset of CEL's 1-based (line, column)."""
    lines = source.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + max(column - 1, 0)


def check(source: str) -> tuple[Condition | None, ExpressionProblem | None]:
    """Compile ``source``; return the condition, or the problem with its position."""
    try:
        program = cel.compile(source)
    except Exception as exc:  # noqa: BLE001 - the binding raises several types for bad input
        message = str(exc)
        position = None
        match = _POSITION.search(message)
        if match:
            position = _offset(source, int(match.group(1)), int(match.group(2)))
            detail = message[match.end() :].split("\n", maxsplit=1)[0].strip()
        else:
            detail = message.split("\n", maxsplit=1)[0]
        return None, ExpressionProblem(detail or "syntax error", position)
    names = tuple(program.variables())
    code = _STRING.sub(lambda m: " " * len(m.group()), source)
    for name in names:
        if name in VARIABLES:
            continue
        stray = _outside_macros(code, name)
        if stray is None:
            continue  # bound by a comprehension macro such as args.items.all(x, ...)
        known = ", ".join(VARIABLES)
        return None, ExpressionProblem(f"unknown variable {name!r} (known: {known})", stray)
    for function in program.functions():
        if function[0] in "_@!-" or function in FUNCTIONS:
            continue
        found = re.search(rf"\b{re.escape(function)}\s*\(", code)
        return None, ExpressionProblem(
            f"unknown function {function!r}", found.start() if found else None
        )
    used = tuple(n for n in names if n in VARIABLES)
    return Condition(source, program, used), None


def _outside_macros(code: str, name: str) -> int | None:
    """Where ``name`` is used outside every macro call that binds it (None: nowhere).

    A comprehension variable (the ``x`` of ``list.all(x, x > 0)``) is in scope only inside the
    parentheses of its macro; ``code`` has its string literals blanked out.
    """
    scopes = []
    for match in re.finditer(_MACRO.format(name=re.escape(name)), code):
        depth, end = 1, len(code)
        for index in range(match.end(), len(code)):
            depth += {"(": 1, ")": -1}.get(code[index], 0)
            if depth == 0:
                end = index
                break
        scopes.append((match.start(), end))
    for use in re.finditer(rf"(?<![\w.]){re.escape(name)}\b", code):
        if not any(start <= use.start() < end for start, end in scopes):
            return use.start()
    return None


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
