"""Records of many sidecars verified together, anchors, keyed digests, query and explain by
prefix: through the real chain writer and ``remit audit`` (typer's CliRunner)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path

import msgspec
import yaml
from typer.testing import CliRunner

from remit.audit import AuditChain, DecisionRecord, build_outcome, open_chain
from remit.audit.anchors import Anchor
from remit.audit.arguments import key_id
from remit.audit.builders import build_decision
from remit.audit.canonical import canonical_json
from remit.cli.audit import audit_app
from remit.policy.request import Request
from tests.dataplane.audit.helpers import (
    ALICE,
    NOW,
    allowed_by_consent,
    clock,
    denied,
    file_settings,
)

runner = CliRunner()
PODS = ("files-a", "files-b", "files-c")


async def _sidecar(path: Path, pod: str, calls: int, **settings: object) -> AuditChain:
    chain = await open_chain(
        file_settings(path, **settings), server="agents/files", pod=pod, clock=clock
    )
    for _ in range(calls):  # records name the pod that wrote them, as the gateway's do
        entry = await chain.append(msgspec.structs.replace(allowed_by_consent(), pod=pod))
        assert isinstance(entry.record, DecisionRecord)
        await chain.append(build_outcome(entry.record, outcome="ok", latency_ms=1.0, clock=clock))
        await chain.append(msgspec.structs.replace(denied(), pod=pod))
    await chain.close()
    return chain


async def _three(tmp_path: Path) -> tuple[list[Path], list[AuditChain]]:
    paths = [tmp_path / f"{pod}.jsonl" for pod in PODS]
    chains = [
        await _sidecar(p, pod, 3 + n) for n, (p, pod) in enumerate(zip(paths, PODS, strict=True))
    ]
    return paths, chains


def _anchors(path: Path, chains: list[AuditChain]) -> Path:
    data = {pod: Anchor(pod, c.head, "2026-03-01T12:00:00Z").to_json().decode()
            for pod, c in zip(PODS, chains, strict=True)}  # fmt: skip
    document = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                "metadata": {"name": "remit-anchors-files"}}  # fmt: skip
    path.write_text(yaml.safe_dump(document))
    return path


async def test_three_sidecars_records_shuffled_together_verify_chain_by_chain(
    tmp_path: Path,
) -> None:
    paths, chains = await _three(tmp_path)
    lines = [line for p in paths for line in p.read_text().splitlines(keepends=True)]
    random.Random(7).shuffle(lines)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(lines))

    result = runner.invoke(audit_app, ["verify", str(mixed), "--output", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"]
    by_pod = {c["pod"]: c for c in report["chains"]}
    assert set(by_pod) == set(PODS)
    for pod, chain in zip(PODS, chains, strict=True):
        assert by_pod[pod]["head"] == chain.head
    assert [by_pod[p]["records"] for p in PODS] == [1 + 3 * 3, 1 + 4 * 3, 1 + 5 * 3]

    # kubectl logs --prefix output, from stdin, with the sidecar's own log lines in between.
    prefixed = "".join(f"[pod/x/remit-gateway] {line}" for line in lines) + "INFO started\n"
    piped = runner.invoke(audit_app, ["verify", "-", "--skip-non-records"], input=prefixed)
    assert piped.exit_code == 0, piped.output
    assert "OK 3 chain(s) intact" in piped.output


async def test_a_deleted_record_in_the_mix_is_named(tmp_path: Path) -> None:
    paths, _ = await _three(tmp_path)
    lines = [line for p in paths for line in p.read_text().splitlines(keepends=True)]
    del lines[5]
    random.Random(3).shuffle(lines)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(lines))
    result = runner.invoke(audit_app, ["verify", str(mixed), "--by-chain"])
    assert result.exit_code == 1
    assert "is not among the records" in " ".join(result.output.split())


async def test_a_truncated_log_verifies_alone_but_not_against_the_anchors(tmp_path: Path) -> None:
    paths, chains = await _three(tmp_path)
    anchors = _anchors(tmp_path / "anchors.yaml", chains)
    before = runner.invoke(audit_app, ["verify", *map(str, paths), "--anchors", str(anchors)])
    assert before.exit_code == 0, before.output
    victim = paths[1]
    victim.write_text("".join(victim.read_text().splitlines(keepends=True)[:-4]))

    alone = runner.invoke(audit_app, ["verify", str(victim)])
    assert alone.exit_code == 0, alone.output  # a shorter chain is still a chain

    anchored = runner.invoke(audit_app, ["verify", *map(str, paths), "--anchors", str(anchors)])
    assert anchored.exit_code == 1, anchored.output
    text = " ".join(anchored.output.split())
    assert f"files-b: the head anchored at 2026-03-01T12:00:00Z ({chains[1].head})" in text
    assert "cut before it or rewritten" in text
    assert "files-a: anchored head" in text
    assert "present" in text


async def test_a_wholly_rewritten_log_fails_against_the_anchors(tmp_path: Path) -> None:
    paths, chains = await _three(tmp_path)
    anchors = _anchors(tmp_path / "anchors.yaml", chains)
    records = [json.loads(line) for line in paths[0].read_text().splitlines()]
    rewritten, prev = [], "0" * 64  # every hash recomputed: the chain itself is "intact"
    for record in records:
        record.pop("hash"), record.pop("prev")
        if record.get("decision") == "deny":
            record["decision"], record["reason"] = "allow", "allowed"
        record["prev"] = prev
        record["hash"] = prev = hashlib.sha256(canonical_json(record)).hexdigest()
        rewritten.append(json.dumps(record) + "\n")
    paths[0].write_text("".join(rewritten))
    assert runner.invoke(audit_app, ["verify", str(paths[0])]).exit_code == 0
    result = runner.invoke(audit_app, ["verify", *map(str, paths), "--anchors", str(anchors)])
    assert result.exit_code == 1
    assert "files-a: the head anchored" in " ".join(result.output.split())


async def test_a_restarted_sidecar_names_its_previous_anchored_head(tmp_path: Path) -> None:
    first = await _sidecar(tmp_path / "old.jsonl", "files-a", 2)
    await _sidecar(tmp_path / "new.jsonl", "files-a", 1, anchor=first.head)
    marker = json.loads((tmp_path / "new.jsonl").read_text().splitlines()[0])
    assert marker["start"] == "genesis"
    assert marker["after"] == first.head
    result = runner.invoke(
        audit_app, ["verify", str(tmp_path / "new.jsonl"), str(tmp_path / "old.jsonl")]
    )
    assert result.exit_code == 0, result.output
    assert f"continues the chain anchored at {first.head[:16]}" in " ".join(result.output.split())


async def test_a_keyed_digest_differs_from_the_sha256_of_the_value(tmp_path: Path) -> None:
    key = b"k" * 32
    chain = await open_chain(
        file_settings(tmp_path / "keyed.jsonl", digest_key=key),
        server="agents/files", pod="files-a", clock=clock,
    )  # fmt: skip
    assert chain.digest_key == key  # what the gateway's recorder builds records with
    value = {"answer": "yes"}  # low entropy: sha256 of a guess would find it
    request = Request(identity=ALICE, method="tools/call", name="confirm", arguments=value, now=NOW)
    common = {"server": "agents/files", "pod": "files-a", "decision": "allow", "reason": "allowed"}
    keyed = build_decision(request, argument_key=chain.digest_key, **common)  # type: ignore[arg-type]
    plain = build_decision(request, **common)  # type: ignore[arg-type]
    await chain.append(keyed)
    await chain.close()

    sha256 = hashlib.sha256(canonical_json(value)).hexdigest()
    assert plain.arguments is not None
    assert plain.arguments.digest == sha256
    written = json.loads((tmp_path / "keyed.jsonl").read_text().splitlines()[1])["arguments"]
    assert written["digest"] != sha256
    assert written["digest"] == hmac.new(key, canonical_json(value), "sha256").hexdigest()
    assert written["key"] == key_id(key)
    assert runner.invoke(audit_app, ["verify", str(tmp_path / "keyed.jsonl")]).exit_code == 0
