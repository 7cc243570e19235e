"""Policy tests: a table of requests and the decision each must get, run like ``opa test``.

A policy repository keeps, next to its resources, YAML files that list cases, either as a
plain list or, so that tools loading every YAML file of the repository skip it, as a mapping
``{kind: PolicyTests, cases: [...]}``::

    - name: alice's bot may write her files with consent
      server: files                 # MCPServer name (namespace: optional if unambiguous)
      subject: alice@example.com
      groups: [support]
      agent: support-bot
      tool: write_file              # or resource: URI, or prompt: name
      args: {path: /data/alice/x}
      annotations: {destructiveHint: false}
      at: "2026-03-02T10:00:00Z"    # decide as of this time (default: now)
      expect: {effect: allow, reason: allowed}

Each case is decided by the same compiler and engine the gateway runs. Every problem with a
table is a ``LoadError`` naming the file, the case and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remit.api.common import Resource
from remit.api.loader import field_path
from remit.errors import CompileError, LoadError
from remit.policy.bundle import Bundle
from remit.policy.compiler import compile_bundle
from remit.policy.decision import ENGINE_REASONS, Decision
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request

REASONS = frozenset(reason.value for reason in ENGINE_REASONS)
TARGETS = {"tool": "tools/call", "resource": "resources/read", "prompt": "prompts/get"}


class Expect(BaseModel):
    """The decision a case must get. ``reason`` is optional: without it only the effect counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: Literal["allow", "deny"]
    reason: str | None = None

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str | None) -> str | None:
        if value is not None and value not in REASONS:
            raise ValueError(f"unknown reason {value!r} (known: {', '.join(sorted(REASONS))})")
        return value


class CaseSpec(BaseModel):
    """One row of a test table, as written in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    server: str = Field(min_length=1)
    namespace: str | None = None
    subject: str = Field(min_length=1)
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    issuer: str = ""
    agent: str = Field(min_length=1)
    tool: str | None = None
    resource: str | None = None
    prompt: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    annotations: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = None
    expect: Expect

    @field_validator("groups", "scopes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2026-03-02T10:00:00Z")
        return value

    def target(self) -> tuple[str, str]:
        """(JSON-RPC method, name): exactly one of tool, resource or prompt is set."""
        given = [(TARGETS[k], v) for k in TARGETS if (v := getattr(self, k))]
        if len(given) != 1:
            raise ValueError("name exactly one of tool, resource or prompt")
        return given[0]


@dataclass(frozen=True, slots=True)
class Case:
    """A validated case and where it was written (``file:line``)."""

    spec: CaseSpec
    where: str

    def request(self) -> Request:
        """The request the engine decides."""
        s = self.spec
        method, name = s.target()
        identity = Identity(s.subject, s.agent, s.issuer, s.groups, s.scopes)
        return Request(identity, method, name, s.args, s.annotations, s.at)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What a case got: a decision, or the error that kept it from being decided."""

    case: Case
    decision: Decision | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        """True when the decision has the expected effect (and reason, when one is given)."""
        d, expect = self.decision, self.case.spec.expect
        if d is None:
            return False
        return d.effect == expect.effect and expect.reason in (None, d.reason)

    def explanation(self) -> str:
        """Why a case failed, in one line; empty when it passed."""
        if self.passed:
            return ""
        if self.decision is None:
            return f"error: {self.error}"
        expect, d = self.case.spec.expect, self.decision
        wanted = expect.effect + (f" ({expect.reason})" if expect.reason else "")
        rules = f"; rules: {', '.join(d.rules)}" if d.rules else ""
        return f"expected {wanted}, got {d.effect} ({d.reason}): {d.message}{rules}"


def _case(item: Any, where: str) -> Case:
    if not isinstance(item, Mapping):
        raise LoadError(f"{where}: a case must be a mapping, got {type(item).__name__}")
    label = f"{where} ({item.get('name')})" if item.get("name") else where
    try:
        spec = CaseSpec.model_validate(item)
        spec.target()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise LoadError(f"{label}: {field_path(first['loc'])}: {message}") from exc
    except ValueError as exc:
        raise LoadError(f"{label}: {exc}") from exc
    return Case(spec, where)


def load_table(path: Path, problems: list[LoadError] | None = None) -> list[Case]:
    """The cases of one test file: a YAML list (or a mapping with a ``cases`` list).

    With ``problems``, every bad case is appended there and the good ones are returned;
    without, the first bad case raises.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise LoadError(f"{path}: invalid YAML: {exc}") from exc
    if isinstance(data, Mapping):
        extra = set(data) - {"kind", "cases"}
        if "cases" not in data or extra or data.get("kind", "PolicyTests") != "PolicyTests":
            raise LoadError(f"{path}: expected a list of cases or {{kind: PolicyTests, cases}}")
        data = data["cases"]
        node = next(v for k, v in node.value if k.value == "cases")  # type: ignore[union-attr]
    if not isinstance(data, list):
        raise LoadError(f"{path}: expected a list of cases")
    lines = [item.start_mark.line + 1 for item in node.value]  # type: ignore[union-attr]
    cases = []
    for item, line in zip(data, lines, strict=True):
        try:
            cases.append(_case(item, f"{path}:{line}"))
        except LoadError as exc:
            if problems is None:
                raise
            problems.append(exc)
    return cases


def is_table(path: Path) -> bool:
    """Test files are found by name: in a ``tests`` folder, or named ``*_test.yaml``."""
    return path.suffix in (".yaml", ".yml") and (
        "tests" in path.parts[:-1] or path.stem.endswith(("_test", ".test"))
    )


def split_files(roots: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(resource files, test files) under ``roots``; a file given by name is a resource."""
    resources: list[Path] = []
    tables: list[Path] = []
    for root in roots:
        if not root.is_dir():
            resources.append(root)
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix not in (".yaml", ".yml"):
                continue
            (tables if is_table(path.relative_to(root.parent)) else resources).append(path)
    return resources, tables


def load_cases(paths: Sequence[Path]) -> tuple[list[Case], list[LoadError]]:
    """Every good case of every file, and every problem: each bad case, each unreadable file."""
    cases: list[Case] = []
    problems: list[LoadError] = []
    for path in paths:
        try:
            cases += load_table(path, problems)
        except LoadError as exc:
            problems.append(exc)
    return cases, problems


def run_cases(resources: Sequence[Resource], cases: Iterable[Case]) -> list[CaseResult]:
    """Decide each case. Bundles are compiled once per (server, namespace, time)."""
    bundles: dict[tuple[str, str | None, datetime | None], Engine | str] = {}
    outcomes: list[CaseResult] = []
    for case in cases:
        s = case.spec
        key = (s.server, s.namespace, s.at)
        if key not in bundles:
            bundles[key] = _engine(resources, s.server, s.namespace, s.at)
        engine = bundles[key]
        if isinstance(engine, str):
            outcomes.append(CaseResult(case, error=engine))
        else:
            outcomes.append(CaseResult(case, engine.decide(case.request())))
    return outcomes


def _engine(
    resources: Sequence[Resource], server: str, namespace: str | None, at: datetime | None
) -> Engine | str:
    try:
        bundle: Bundle = compile_bundle(
            resources, server, namespace=namespace, now=at or datetime.now(UTC)
        )
    except CompileError as exc:
        return str(exc)
    return Engine(bundle)
