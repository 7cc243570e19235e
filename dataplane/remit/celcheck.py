"""Checking CEL conditions without evaluating them: the one place that loads the binding.

A condition is checked when a resource loads (the API models validate with it) and compiled
again when a bundle is built (the policy engine evaluates with it). Checking needs only the
native compiler and the tables of variables and functions Remit allows; it needs nothing of the
policy engine, so it sits below both (``remit.api`` and ``remit.policy`` import it, it imports
neither), like OPA separating checking from evaluation.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


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


@dataclass(frozen=True, slots=True)
class Checked:
    """A condition that compiled, uses only known variables and functions: its program and the
    request variables it references."""

    source: str
    program: Any
    variables: tuple[str, ...]


def _offset(source: str, line: int, column: int) -> int:
    """0-based offset of CEL's 1-based (line, column)."""
    lines = source.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + max(column - 1, 0)


def check(source: str) -> tuple[Checked | None, ExpressionProblem | None]:
    """Compile ``source``; return the checked program, or the problem with its position."""
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
    return Checked(source, program, used), None


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


# -- result type: a condition must be boolean ------------------------------------------------
# The binding has no type checker, so the type of a condition's result is read off the top of
# its syntax: a comparison or logical operator is boolean; arithmetic, a literal or a call known
# to return something else is not. Anything undecidable here (a bare variable, an index) passes:
# ``args.flag`` may well hold a boolean, and the engine still denies if it does not.
_BOOL_CALLS = frozenset(
    {"contains", "startsWith", "endsWith", "matches", "all", "exists", "exists_one", "has"}
)
_OTHER_CALLS = frozenset(FUNCTIONS - _BOOL_CALLS - {"dyn"})
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)[uU]?")
_RELATIONS = ("==", "!=", "<=", ">=", "<", ">", " in ")


def _quoted_blank(source: str) -> str:
    """``source`` with the inside of every string literal blanked (quotes kept)."""
    return _STRING.sub(lambda m: m.group()[0] + " " * (len(m.group()) - 2) + m.group()[-1], source)


def _top(code: str) -> list[int]:
    """Offsets of the characters of ``code`` outside every bracket and string."""
    depth, quote, found = 0, "", []
    for index, char in enumerate(code):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            found.append(index)
    return found


def _balanced_prefix(code: str) -> bool:
    depth = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _result(code: str) -> str | None:
    """``"bool"``, ``"other"`` or None (cannot tell) for a blanked expression."""
    code = code.strip()
    while code.startswith("(") and code.endswith(")") and _balanced_prefix(code[1:-1]):
        code = code[1:-1].strip()
    top = _top(code)
    kept = set(top)
    text = "".join(code[i] if i in kept else "#" for i in range(len(code)))
    if "?" in text:
        question = text.index("?")
        colon = text.find(":", question)
        if colon > 0:
            kinds = {_result(code[question + 1 : colon]), _result(code[colon + 1 :])}
            return "other" if kinds == {"other"} else ("bool" if "bool" in kinds else None)
    if "||" in text or "&&" in text or any(op in text for op in _RELATIONS):
        return "bool"
    for index in range(1, len(text)):
        char, before = text[index], text[:index].rstrip()
        if char in "+*/%" or (char == "-" and before and before[-1] not in "+-*/%!<>=(,?:"):
            if char == "-" and re.search(r"\d[eE]$", before):
                continue  # an exponent, not a subtraction
            return "other"
    if code.startswith("!"):
        return "bool"
    if code.startswith("-") or _NUMBER.fullmatch(code) or code == "null":
        return "other"
    if code in ("true", "false"):
        return "bool"
    if code[:1] in "[{" and _balanced_prefix(code) and code[-1:] in "]}":
        return "other"
    quote = re.match(r"[bBrR]{0,2}([\"'])", code)
    if quote and code.endswith(quote.group(1)) and len(top) == 0:
        return "other"  # a whole string or bytes literal
    call = re.search(r"(?:^|\.)\s*([A-Za-z_]\w*)\s*\($", code[: _last_open(code)] + "(")
    if code.endswith(")") and call:
        name = call.group(1)
        if name in _BOOL_CALLS:
            return "bool"
        if name in _OTHER_CALLS:
            return "other"
    return None


def _last_open(code: str) -> int:
    """Offset of the ``(`` that the final ``)`` of ``code`` closes (or the length)."""
    depth = 0
    for index in range(len(code) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(code[index], 0)
        if depth == 0 and code[index] == "(":
            return index
    return len(code)


def non_boolean(source: str) -> str | None:
    """Why ``source`` can never be a boolean condition, or None when it may be one."""
    checked, problem = check(source)
    if checked is None or problem is not None:
        return None
    if not checked.variables:
        try:
            value = checked.program.execute(cel.Context())
        except Exception:  # noqa: BLE001 - evaluation errors are the engine's to report
            return None
        if not isinstance(value, bool):
            return f"always evaluates to {type(value).__name__} {value!r}, not a boolean"
        return None
    if _result(_quoted_blank(source)) == "other":
        return "its result is not a boolean (a comparison, a logical operator or a test is)"
    return None
