"""The accounting check: after a (hostile) run, prove the gateway accounted for everything.

Inputs are what the recording MCP server saw (``tests.support.upstreams`` run with
``--audit-file``: each request carries ``auditBytes``, the size of the gateway's decision log at
the moment the request arrived) and the decision log itself. Since the log is append-only, a
line that ends at or before ``auditBytes`` was written before the request reached the server,
and a line that starts at or after it was written after. The rules:

1. ``remit audit verify`` passes on the log.
2. Every governed unit that reached the server — each JSON-RPC request in a POST body, each
   notification the protocol does not define for clients, each client response (recorded as
   method ``response``, tool = its id), each GET stream and DELETE — is
   matched one to one to an ``allow`` decision named in the request's ``X-Remit-Decision``
   header, for the same method and tool/resource/prompt, written *before* the request arrived.
3. Each of those decisions has exactly one outcome, written *after* the request arrived.
4. Nothing denied reached the server: every decision named upstream is an ``allow``, used once.
5. Every ``allow`` in the log has exactly one outcome; one that never reached the server must
   say so (``not_forwarded``, ``denied`` or ``upstream_error``). Every outcome completes an
   ``allow`` written before it.

Requests the gateway makes itself (tool discovery, ``X-Remit-Agent: remit-gateway``) are
exempt: they carry no caller's action. One log per recording server: run them in pairs::

    with stack.upstream(logs, audit_file=log) as upstream, stack.gateway(
        logs, upstream_url=upstream.url, audit_file=log, ...
    ) as gateway:
        ...  # the hostile run
        requests = upstream.requests()
        gateway.process.stop()  # closes aggregation windows: their summaries are written
        accounting.check(requests, log, remit=stack.REMIT)
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from remit.gateway.protocol import NAME_PARAM, VERSION_HEADER, is_client_notification

DISCOVERY_AGENT = "remit-gateway"
NOT_FORWARDED = frozenset({"not_forwarded", "denied", "upstream_error"})


class AccountingError(AssertionError):
    """The run left something unaccounted for; ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("accounting check failed:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the log: its byte range and its record."""

    number: int
    start: int
    end: int
    record: Mapping[str, Any]


@dataclass
class Accounting:
    """What a passing check counted."""

    forwarded: int = 0
    units: int = 0
    allows: int = 0
    denies: int = 0
    refusals: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def read_log(path: Path) -> list[Line]:
    """Every record line of the log with its byte offsets (blank lines skipped)."""
    lines: list[Line] = []
    offset = 0
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        start, offset = offset, offset + len(raw)
        if raw.strip():
            lines.append(Line(number, start, offset, orjson.loads(raw)))
    return lines


def verify_with_cli(path: Path, remit: str) -> str | None:
    """``remit audit verify`` on the log; None if it passes, else its output."""
    result = subprocess.run(
        [remit, "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return None if result.returncode == 0 else (result.stdout + result.stderr).strip()


def governed(request: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The (method, target) units a request that reached the server needs a decision for;
    None when its body was not JSON-RPC the gateway could have decided."""
    if request["method"] in ("GET", "DELETE"):
        return [(request["method"], "")]
    rpc = request.get("rpc")
    if rpc is None:
        return None
    version = request["headers"].get(VERSION_HEADER)
    units: list[tuple[str, str]] = []
    for message in rpc if isinstance(rpc, list) else [rpc]:
        if not isinstance(message, dict):
            return None
        if "method" not in message:  # the client's response to a server request
            units.append(("response", str(message.get("id"))))
            continue
        method = message.get("method")
        if not isinstance(method, str):
            return None  # never forwarded by a correct gateway
        if "id" not in message and is_client_notification(method, version):
            continue
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        key = NAME_PARAM.get(method)
        target = params.get(key) if key else None
        units.append((method, target if isinstance(target, str) else ""))
    return units


def _decision_ids(request: Mapping[str, Any]) -> list[str]:
    value = request["headers"].get("x-remit-decision", "")
    return [part.strip() for part in value.split(",") if part.strip()]


def check(
    requests: Iterable[Mapping[str, Any]], log: Path, *, remit: str | None = None
) -> Accounting:
    """Apply the rules in the module docstring; raise ``AccountingError`` listing every breach.

    ``remit`` is the ``remit`` executable for rule 1 (skipped when None).
    """
    problems: list[str] = []
    if remit is not None:
        failed = verify_with_cli(log, remit)
        if failed is not None:
            problems.append(f"remit audit verify failed: {failed}")
    lines = read_log(log)
    decisions = {ln.record["id"]: ln for ln in lines if ln.record.get("type") == "decision"}
    outcomes: dict[str, list[Line]] = {}
    for ln in lines:
        if ln.record.get("type") == "outcome":
            outcomes.setdefault(ln.record["decisionId"], []).append(ln)
    summary = Accounting()
    used: dict[str, int] = {}
    for index, request in enumerate(requests):
        if request["headers"].get("x-remit-agent") == DISCOVERY_AGENT:
            continue
        summary.forwarded += 1
        problems += _check_request(index, request, decisions, outcomes, used, summary)
    problems += _check_log(lines, decisions, outcomes, used, summary)
    if problems:
        raise AccountingError(problems)
    return summary


def _check_request(
    index: int,
    request: Mapping[str, Any],
    decisions: Mapping[str, Line],
    outcomes: Mapping[str, list[Line]],
    used: dict[str, int],
    summary: Accounting,
) -> list[str]:
    what = f"upstream request #{index} ({request['method']})"
    units = governed(request)
    if units is None:
        return [f"{what}: a body that is not JSON-RPC reached the server: {request.get('rpc')!r}"]
    arrived = request.get("auditBytes")
    if not isinstance(arrived, int):
        return [f"{what}: the server did not record the log size at arrival"]
    problems: list[str] = []
    ids = _decision_ids(request)
    wanted = Counter(units)
    summary.units += len(units)
    for record_id in ids:
        line = decisions.get(record_id)
        if line is None:
            problems.append(f"{what}: X-Remit-Decision {record_id} is not in the log")
            continue
        record = line.record
        if record_id in used:
            problems.append(f"{what}: decision {record_id} also covered request #{used[record_id]}")
        used[record_id] = index
        if record["decision"] != "allow":
            problems.append(f"{what}: denied decision {record_id} reached the server")
        if line.end > arrived:
            problems.append(f"{what}: decision {record_id} was written after the request arrived")
        unit = (record["method"], record["tool"])
        if wanted[unit] > 0:
            wanted[unit] -= 1
        else:
            problems.append(f"{what}: decision {record_id} is for {unit}, which it did not carry")
        done = outcomes.get(record_id, [])
        if len(done) != 1:
            problems.append(f"{what}: decision {record_id} has {len(done)} outcomes, not one")
        elif done[0].start < arrived:
            problems.append(f"{what}: outcome of {record_id} was written before it arrived")
    missing = sorted(unit for unit, count in wanted.items() for _ in range(count))
    if missing:
        problems.append(f"{what}: reached the server without an allow decision for {missing}")
    return problems


def _check_log(
    lines: Sequence[Line],
    decisions: Mapping[str, Line],
    outcomes: Mapping[str, list[Line]],
    used: Mapping[str, int],
    summary: Accounting,
) -> list[str]:
    problems: list[str] = []
    for record_id, line in decisions.items():
        record = line.record
        if record["decision"] == "deny":
            summary.denies += 1
            summary.refusals += int(record.get("count", 1))
            continue
        summary.allows += 1
        done = outcomes.get(record_id, [])
        if len(done) != 1:
            problems.append(f"line {line.number}: allow {record_id} has {len(done)} outcomes")
            continue
        kind = done[0].record["outcome"]
        summary.outcomes[kind] += 1
        if record_id not in used and kind not in NOT_FORWARDED:
            problems.append(
                f"line {line.number}: allow {record_id} never reached the server, yet its "
                f"outcome is {kind!r}"
            )
    for record_id, done in outcomes.items():
        decision = decisions.get(record_id)
        for line in done:
            if decision is None or decision.record["decision"] != "allow":
                problems.append(f"line {line.number}: outcome for {record_id}, no allow before it")
            elif decision.end > line.start:
                problems.append(f"line {line.number}: outcome written before its decision")
    return problems


__all__ = ["Accounting", "AccountingError", "check", "governed", "read_log"]
