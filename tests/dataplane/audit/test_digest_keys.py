"""``remit audit verify --digest-key/--digest-root``: records keyed before and after a rotation
each name their key and check with it; a log rewritten with recomputed hashes but altered
argument values fails (the real chain writer, typer's CliRunner)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from remit.audit import open_chain
from remit.audit.arguments import ArgumentEvidence, key_id
from remit.audit.builders import build_decision
from remit.audit.keydelivery import server_key
from remit.audit.lines import parse_line, seal
from remit.audit.records import GENESIS
from remit.cli.audit import audit_app
from remit.policy.request import Request
from tests.dataplane.audit.helpers import ALICE, NOW, clock, file_settings

runner = CliRunner()
ROOTS = (b"1" * 44, b"2" * 44)
KEYS = tuple(server_key(root, "agents/files") for root in ROOTS)
IDS = tuple(key_id(key) for key in KEYS)


async def _rotated_log(path: Path) -> None:
    """One call under the first key, one under the second (as a delivery switches it)."""
    chain = await open_chain(file_settings(path), server="agents/files", pod="files-a", clock=clock)
    request = Request(
        identity=ALICE, method="tools/call", name="confirm", arguments={"answer": "yes"}, now=NOW
    )
    for key in KEYS:
        chain.digest_key = key  # what the gateway's key inbox does on a delivery
        record = build_decision(
            request, server="agents/files", pod="files-a", decision="allow", reason="allowed",
            argument_mode="redacted", argument_key=chain.digest_key,
        )  # fmt: skip
        await chain.append(record)
    await chain.close()


def _files(tmp_path: Path, name: str, values: tuple[bytes, ...]) -> list[str]:
    paths = []
    for n, value in enumerate(values):
        path = tmp_path / f"{name}-{n}"
        path.write_bytes(value + b"\n")
        paths.append(str(path))
    return paths


async def test_records_before_and_after_a_rotation_verify_with_their_keys(tmp_path: Path) -> None:
    log = tmp_path / "rotated.jsonl"
    await _rotated_log(log)
    options = [a for p in _files(tmp_path, "key", KEYS) for a in ("--digest-key", p)]
    result = runner.invoke(audit_app, ["verify", str(log), *options])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"digest key {IDS[0]}: 1 record(s)" in text
    assert f"digest key {IDS[1]}: 1 record(s)" in text
    assert "2 digest(s) recomputed" in text
    # From standard input: the digest pass and the chain pass both read it (the second from
    # the copy kept as the first read it).
    piped = runner.invoke(audit_app, ["verify", "-", *options], input=log.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert "2 digest(s) recomputed" in " ".join(piped.output.split())
    assert "OK intact: " in piped.output
    # The operator's root Secret values derive each record's server key.
    roots = [a for p in _files(tmp_path, "root", ROOTS) for a in ("--digest-root", p)]
    result = runner.invoke(audit_app, ["verify", str(log), *roots, "-o", "json"])
    assert result.exit_code == 0, result.output
    digests = json.loads(result.output)["digests"]
    assert digests["keyed"] == {IDS[0]: 1, IDS[1]: 1}
    assert (digests["checked"], digests["mismatched"]) == (2, 0)
    # Only the newer key: the older record names a key nobody gave; that is no failure.
    newer = _files(tmp_path, "newer", KEYS[1:])
    result = runner.invoke(audit_app, ["verify", str(log), "--digest-key", newer[0]])
    assert result.exit_code == 0, result.output
    assert f"digest key {IDS[0]}: 1 record(s), no key given for it" in " ".join(
        result.output.split()
    )


async def test_a_log_rewritten_with_recomputed_hashes_fails_with_the_key(tmp_path: Path) -> None:
    log = tmp_path / "rotated.jsonl"
    await _rotated_log(log)
    # Whoever rewrites the whole log changes what was asked and recomputes every hash ...
    prev, lines = GENESIS, []
    for line in log.read_bytes().splitlines():
        record = parse_line(line)
        arguments = getattr(record, "arguments", None)
        if isinstance(arguments, ArgumentEvidence):
            forged = msgspec.structs.replace(arguments, values={"answer": "no"})
            record = msgspec.structs.replace(record, arguments=forged)  # type: ignore[type-var]
        entry = seal(record, prev)
        prev = entry.record.hash
        lines.append(entry.line)
    log.write_bytes(b"".join(lines))
    assert runner.invoke(audit_app, ["verify", str(log)]).exit_code == 0  # ... the chain holds
    # ... but without the key cannot make the digests match the values.
    options = [a for p in _files(tmp_path, "key", KEYS) for a in ("--digest-key", p)]
    result = runner.invoke(audit_app, ["verify", str(log), *options])
    assert result.exit_code == 1, result.output
    assert result.output.count("digest does not match its arguments") == 2


def test_an_unreadable_or_short_key_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    short = _files(tmp_path, "short", (b"tiny",))[0]
    log = _files(tmp_path, "log", (b"",))[0]
    for path in (short, str(tmp_path / "missing")):
        result = runner.invoke(audit_app, ["verify", log, "--digest-key", path])
        assert result.exit_code == 2
        assert "digest key" in result.output
        assert "Traceback" not in result.output


def test_key_names_keep_no_rotated_out_secret_in_memory() -> None:
    # key_id is asked per record; it may remember the current key, never the ones before it.
    old, new = bytes(range(32)), bytes(range(1, 33))
    references = sys.getrefcount(old)
    named_old = key_id(old)
    assert key_id(bytes(range(32))) == named_old  # asked again (an equal key): the same name
    assert key_id(new) != named_old  # the key rotates
    assert sys.getrefcount(old) == references  # nothing keeps the rotated-out key alive
    assert key_id(old) == named_old  # and its name is the same when asked again
