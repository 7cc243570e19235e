"""Decision records: hash-chained JSON lines that prove why each MCP call was allowed or denied.

The gateway builds a record per decision (:func:`build_decision`) and appends it to an
:class:`AuditChain` *before* forwarding the call, then appends an outcome
(:func:`build_outcome`). A chain writes through a sink (stdout or an append-only, group-fsynced
file). :func:`verify_file` checks a log; :func:`explain` answers who acted, for whom, under
which consent and by which rule. Module map:

- ``records``: the record types (decision, outcome, chain marker) and their JSON objects
- ``lines``: sealing a record into a chained line (``prev``/``hash``) and parsing it back
- ``canonical``: the canonical JSON every hash is taken over
- ``arguments``: argument digests and redaction
- ``builders``: records from a :class:`~remit.policy.request.Request` and a decision
  (``record_decision`` for the gateway: bundle and engine decision in, record out)
- ``sinks``: ``AuditSettings``, ``StdoutSink``, ``FileSink``, ``sink_from_settings``
- ``writer``: the queue and writer thread behind every sink, and its back-pressure policy
- ``health``: ``SinkHealth``, what a sink reports for readiness and metrics
- ``chain``: ``AuditChain``, segments, resume after restart, ``open_chain``
- ``verify`` / ``explain``: reading logs back
"""

from remit.audit.arguments import ArgumentEvidence, ArgumentMode, redact
from remit.audit.builders import build_decision, build_outcome, record_decision
from remit.audit.canonical import canonical_json
from remit.audit.chain import AuditChain, open_chain
from remit.audit.explain import Explanation, explain
from remit.audit.health import SinkHealth
from remit.audit.lines import Entry, parse_line, seal
from remit.audit.records import (
    GENESIS,
    AuditRecord,
    ChainRecord,
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
    RecordedGrant,
    hash_session,
)
from remit.audit.sinks import AuditSettings, FileSink, Sink, StdoutSink, sink_from_settings
from remit.audit.verify import Gap, VerifyResult, verify_file, verify_lines

__all__ = [
    "GENESIS",
    "ArgumentEvidence",
    "ArgumentMode",
    "AuditChain",
    "AuditRecord",
    "AuditSettings",
    "ChainRecord",
    "ConsentRecord",
    "DecisionRecord",
    "Entry",
    "Explanation",
    "FileSink",
    "Gap",
    "OutcomeRecord",
    "RecordedGrant",
    "Sink",
    "SinkHealth",
    "StdoutSink",
    "VerifyResult",
    "build_decision",
    "build_outcome",
    "canonical_json",
    "explain",
    "hash_session",
    "open_chain",
    "parse_line",
    "record_decision",
    "redact",
    "seal",
    "sink_from_settings",
    "verify_file",
    "verify_lines",
]
