"""``remit test``: run a policy repository's test tables (like ``opa test``) without a cluster.

The logic lives in ``remit.policy.testing``; this module only reads options and prints
results as a test runner does: one line per case, the reason for each failure, and a closing
``N passed, M failed`` line. Exit 0 when every case passes, 1 when any fails, 2 on bad input.
-f directories are read recursively (a policy repository nests one folder per namespace);
test tables found there are not loaded as resources.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated
from xml.etree import ElementTree as ET

import typer

from remit.cli.common import (
    EXIT_DENY,
    EXIT_OK,
    PolicyDir,
    console,
    errors,
    fail,
    load_valid,
    print_json,
)
from remit.policy.testing import CaseResult, load_cases, run_cases, split_files


class Report(enum.StrEnum):
    """How results are printed."""

    text = "text"
    json = "json"
    junit = "junit"


def test(
    files: PolicyDir,
    tests: Annotated[
        list[Path] | None,
        typer.Option(
            "--tests",
            "-t",
            help="Test table (repeatable). Default: YAML files under tests/ folders or named "
            "*_test.yaml in the -f directories.",
        ),
    ] = None,  # noqa: PT028 - a CLI command named `test`, not a pytest test
    output: Annotated[
        Report, typer.Option("--output", "-o", help="text, json or junit (XML).")
    ] = Report.text,  # noqa: PT028
) -> None:
    """Decide every case of the test tables against the policies; fail on any mismatch."""
    resource_files, found = split_files(files)
    tables = list(tests) if tests else found
    if not tables:
        fail("no test tables: put them in a tests/ folder, name them *_test.yaml, or pass --tests")
    cases, problems = load_cases(tables)
    if problems:
        for problem in problems:
            errors.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        fail(f"{len(problems)} bad test case(s) or table(s); nothing was run")
    if not cases:
        fail(f"no test cases in {', '.join(str(t) for t in tables)}")
    loaded = load_valid(resource_files)
    outcomes = run_cases(loaded.resources, cases)
    failed = sum(not o.passed for o in outcomes)
    if output == Report.json:
        print_json(
            {
                "passed": len(outcomes) - failed,
                "failed": failed,
                "cases": [_document(o) for o in outcomes],
            }
        )
    elif output == Report.junit:
        typer.echo(_junit(outcomes))
    else:
        _print_text(outcomes)
    raise typer.Exit(EXIT_DENY if failed else EXIT_OK)


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def _document(outcome: CaseResult) -> dict[str, object]:
    d = outcome.decision
    return {
        "name": outcome.case.spec.name,
        "where": outcome.case.where,
        "passed": outcome.passed,
        "expect": outcome.case.spec.expect.model_dump(exclude_none=True),
        "decision": d.document() if d else None,
        "error": outcome.error,
    }


def _print_text(outcomes: list[CaseResult]) -> None:
    for o in outcomes:
        mark = "[green]PASS[/]" if o.passed else "[bold red]FAIL[/]"
        console.print(
            f"{mark} {o.case.spec.name}  [dim]{o.case.where}[/]", highlight=False, soft_wrap=True
        )
        if not o.passed:
            console.print(f"     {o.explanation()}", highlight=False, soft_wrap=True)
    failed = sum(not o.passed for o in outcomes)
    console.print(f"{len(outcomes) - failed} passed, {failed} failed", highlight=False)


def _junit(outcomes: list[CaseResult]) -> str:
    failed = str(sum(not o.passed for o in outcomes))
    root = ET.Element("testsuites", tests=str(len(outcomes)), failures=failed)
    suite = ET.SubElement(
        root, "testsuite", name="remit", tests=str(len(outcomes)), failures=failed, errors="0"
    )
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", name=o.case.spec.name, classname=o.case.where)
        if not o.passed:
            ET.SubElement(case, "failure", message=o.explanation()).text = o.explanation()
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
