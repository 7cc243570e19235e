"""Copy the generated CRDs (crds/) into the chart (helm/remit/files/crds/), byte for byte.

crds/ is the single source of truth (generated from the models by `remit crds generate`).
The chart cannot read files outside its own folder, so it carries a verbatim copy that
templates/crds.yaml renders behind crds.enabled with the keep annotation. `make chart-crds`
runs this; `--check` exits 1 and names every file that drifted (tests/helm runs the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
TARGET = ROOT / "helm" / "remit" / "files" / "crds"


def drift(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """Every difference between the two folders, as one readable line each."""
    wanted = {p.name: p.read_bytes() for p in sorted(source.glob("*.yaml"))}
    present = {p.name: p.read_bytes() for p in sorted(target.glob("*.yaml"))}
    problems = [f"missing in chart: {name}" for name in wanted if name not in present]
    problems += [f"not in crds/: {name}" for name in present if name not in wanted]
    problems += [
        f"differs from crds/: {name}"
        for name in wanted
        if name in present and wanted[name] != present[name]
    ]
    return problems


def sync(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """Make ``target`` an exact copy of the YAML files in ``source``; return what changed."""
    changed = drift(source, target)
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in source.glob("*.yaml")}
    for stale in target.glob("*.yaml"):
        if stale.name not in wanted:
            stale.unlink()
    for file in sorted(source.glob("*.yaml")):
        (target / file.name).write_bytes(file.read_bytes())
    return changed


def main() -> int:
    """Entry point: sync, or with --check report drift and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    options = parser.parse_args()
    if not SOURCE.is_dir():
        print(f"error: {SOURCE} does not exist; run `make crds` first", file=sys.stderr)
        return 2
    if options.check:
        problems = drift()
        for line in problems:
            print(f"drift: {line}", file=sys.stderr)
        if problems:
            print("run `make chart-crds` to update the chart's copy", file=sys.stderr)
        return 1 if problems else 0
    for line in sync():
        print(f"updated: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
