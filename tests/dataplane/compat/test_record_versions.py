"""Decision records across releases: a v1 gateway's log verified and explained by today's CLI,
a newer gateway's line refused by name (file, line, field) rather than misread, and the rule
that keeps both true when record fields are added (defaults msgspec omits exactly)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import orjson
from typer.testing import CliRunner

from remit.audit.arguments import ArgumentEvidence
from remit.audit.lines import parse_line, seal
from remit.audit.records import (
    GENESIS,
    ChainRecord,
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
    RecordedEvidence,
    RecordedGrant,
)
from remit.cli.audit import audit_app
from tests.dataplane.compat.support import V1

runner = CliRunner()
LOG = V1 / "audit.log"
DECISION = "018e0f3a5c0000000000000000000002"

#: Every record field a v1 gateway wrote (commit cd3fc64). Fields added since must have a default.
RECORDS_FORMAT_1 = {
    "DecisionRecord": {"id", "time", "server", "pod", "prev", "hash", "method", "tool"}
    | {"toolHash", "subject", "issuer", "agent", "chain", "session", "scopes", "decision"}
    | {"reason", "message", "rules", "grant", "bundle", "serial", "arguments", "count", "source"},
    "OutcomeRecord": {"id", "time", "server", "pod", "prev", "hash", "decisionId", "outcome"}
    | {"status", "latencyMs", "error"},
    "ChainRecord": {"id", "time", "server", "pod", "prev", "hash", "start", "message", "after"}
    | {"lost", "notForwarded"},
    "ConsentRecord": {"id", "time", "server", "pod", "prev", "hash", "request", "answer"}
    | {"subject", "agent", "tool", "loginIssuer", "loginSubject", "scope", "grant", "expiresAt"},
    "RecordedGrant": {"name", "uid", "resourceVersion", "expiresAt", "grantedBy", "evidence"},
    "RecordedEvidence": {"method", "issuer", "subject", "consentedAt", "request", "scope"},
    "ArgumentEvidence": {"digest", "values", "key"},
}
STRUCTS: list[type[msgspec.Struct]] = [
    DecisionRecord,
    OutcomeRecord,
    ChainRecord,
    ConsentRecord,
    RecordedGrant,
    RecordedEvidence,
    ArgumentEvidence,
]


def test_a_v1_log_verifies_and_explains_with_this_cli() -> None:
    verified = runner.invoke(audit_app, ["verify", str(LOG)])
    assert verified.exit_code == 0, verified.output
    assert "OK intact: 6 records in 1 segment(s)" in verified.output
    explained = runner.invoke(audit_app, ["explain", str(LOG), DECISION])
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.output.split())
    assert "ALLOWED under consent grant agents/g1" in text
    assert "consented on the consent page at 2026-03-02T09:00:00Z" in text
    assert "Outcome: ok, status 200" in text


def test_every_v1_line_reads_back_to_the_bytes_that_were_hashed() -> None:
    prev = GENESIS
    for line in LOG.read_bytes().splitlines(keepends=True):
        record = parse_line(line)
        assert seal(msgspec.structs.replace(record, hash=""), prev).line == line
        prev = record.hash


def _newer_log(tmp_path: Path, change: dict[str, object]) -> Path:
    """The v1 log with ``change`` in its decision line, chained as a gateway would."""
    out, prev = b"", GENESIS
    for line in LOG.read_bytes().splitlines():
        document = orjson.loads(line)
        document.pop("hash")
        document["prev"] = prev
        if document["id"] == DECISION:
            document.update(change)
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        prev = hashlib.sha256(canonical).hexdigest()
        out += canonical[:-1] + b',"hash":"%s"}\n' % prev.encode()
    path = tmp_path / "newer.log"
    path.write_bytes(out)
    return path


def test_a_line_from_a_newer_gateway_is_refused_naming_line_and_field(tmp_path: Path) -> None:
    newer = _newer_log(tmp_path, {"delegation": {"depth": 2}})
    verified = runner.invoke(audit_app, ["verify", str(newer)])
    assert verified.exit_code == 1
    assert isinstance(verified.exception, SystemExit)  # an answer, not a traceback
    said = " ".join(verified.output.split())
    assert "BROKEN line 2: malformed record: Object contains unknown field `delegation`" in said
    assert "written by a newer Remit gateway" in said
    explained = runner.invoke(audit_app, ["explain", str(newer), DECISION])
    assert explained.exit_code == 1
    assert isinstance(explained.exception, SystemExit)
    said = " ".join(explained.output.split())
    assert f"{newer}:2 mentions it and cannot be read" in said
    assert "unknown field `delegation`" in said


def test_a_record_type_from_a_newer_gateway_is_refused_as_such(tmp_path: Path) -> None:
    newer = _newer_log(tmp_path, {"type": "delegation"})
    verified = runner.invoke(audit_app, ["verify", str(newer)])
    assert verified.exit_code == 1
    said = " ".join(verified.output.split())
    assert "line 2: malformed record: Invalid value 'delegation' - at `$.type`" in said
    assert "newer Remit gateway" in said


def _omitted_exactly(default: object) -> bool:
    """msgspec's omit_defaults compares by identity: only these defaults are always omitted."""
    if default is None or isinstance(default, bool) or default in ("", ()):
        return True
    return type(default) is int and -5 <= default <= 256


def test_record_fields_keep_the_compatibility_rule() -> None:
    for struct in STRUCTS:
        assert struct.__struct_config__.omit_defaults, struct.__name__
        assert struct.__struct_config__.forbid_unknown_fields, struct.__name__
        first = RECORDS_FORMAT_1[struct.__name__]
        for field in msgspec.structs.fields(struct):
            if field.default is not msgspec.NODEFAULT:
                assert _omitted_exactly(field.default), f"{struct.__name__}.{field.name}"
            else:
                assert field.default_factory is msgspec.NODEFAULT, f"{struct.__name__}.{field.name}"
                assert field.encode_name in first, (
                    f"{struct.__name__}.{field.name} was added without a default: "
                    "older lines, which lack it, could no longer be read"
                )
