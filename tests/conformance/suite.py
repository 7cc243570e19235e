"""Running `@modelcontextprotocol/conformance` and the MCP Inspector CLI, and reading results.

The Node tools are installed by ``scripts/node_tools.py`` (``make node-tools``) into a cache
outside the repository. The suite has no option to send a bearer token, so a gateway run
preloads ``authorize.mjs``, which adds the token to the suite's own HTTP requests and changes
nothing else. Results come from the suite's ``checks.json`` files, one per scenario: a check is
identified by (scenario, check id, how many times that id came earlier in the scenario), so
repeated ids (a probe run several ways) stay distinct.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ERAS = ("2025-11-25", "2026-07-28")
WAVE = 4  # Inspector runs at once: the gateway's default GET streams per caller
"""The protocol eras the suite is run in: sessions (``initialize``) and stateless."""
_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")

CheckKey = tuple[str, str, int]


def _script() -> object:
    spec = importlib.util.spec_from_file_location("node_tools", REPO / "scripts" / "node_tools.py")
    if spec is None or spec.loader is None:
        raise ImportError("scripts/node_tools.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_tools() -> Path | None:
    """The node-tools install directory, or None when ``make node-tools`` has not run."""
    script = _script()
    if not script.present():  # type: ignore[attr-defined]
        return None
    return Path(script.install_dir())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NodeTools:
    """Node.js >= 22 with the conformance suite and the Inspector, from the cache."""

    root: Path

    @property
    def node(self) -> str:
        return str(self.root / "node_modules" / ".bin" / "node")

    def package(self, name: str) -> Path:
        return self.root / "node_modules" / "@modelcontextprotocol" / name

    def version(self, name: str) -> str:
        manifest = json.loads((self.package(name) / "package.json").read_text())
        return str(manifest["version"])

    def node_version(self) -> str:
        done = subprocess.run([self.node, "--version"], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def required(self, era: str) -> frozenset[str]:
        """The server scenarios the era's frozen requirement set scores."""
        text = (self.package("conformance") / "requirements" / f"{era}.yaml").read_text()
        names: set[str] = set()
        section = False
        for line in text.splitlines():
            if not line.startswith(" "):
                section = line.strip() == "server:"
                continue
            if section and line.strip().startswith("- "):
                names.add(line.strip()[2:].strip())
        return frozenset(names)

    def env(self, token: str | None, origin: str) -> dict[str, str]:
        env = {**os.environ, "REMIT_NODE_TOOLS": str(self.root)}
        bin_dir = str(self.root / "node_modules" / ".bin")
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.pop("NODE_OPTIONS", None)
        if token is not None:
            env["REMIT_CONFORMANCE_TOKEN"] = token
            env["REMIT_CONFORMANCE_ORIGIN"] = origin
        return env

    def start_suite(
        self, url: str, era: str, out: Path, token: str | None = None, scenario: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``conformance server --requirements ERA`` (or just ``scenario`` at ERA)
        against ``url``; results go to ``out``. With ``token`` every request carries it
        (authorize.mjs)."""
        out.mkdir(parents=True, exist_ok=True)
        argv = [self.node]
        if token is not None:
            argv += ["--import", str(HERE / "authorize.mjs")]
        argv += [str(self.package("conformance") / "dist" / "index.js"), "server"]
        argv += ["--url", url, "--timeout", "20000", "-o", str(out)]
        if scenario is None:
            argv += ["--requirements", era]
        else:
            argv += ["--scenario", scenario, "--spec-version", era]
        origin = re.sub(r"^(https?://[^/]+).*$", r"\1", url)
        with (out / "suite.log").open("wb") as log:
            return subprocess.Popen(
                argv, cwd=out, env=self.env(token, origin), stdout=log, stderr=subprocess.STDOUT
            )

    def inspector(
        self,
        url: str,
        era: str,
        runs: Sequence[Sequence[str]],
        headers: Mapping[str, str],
        home: Path,
    ) -> list[Any]:
        """Run ``mcp-inspector --cli URL --protocol-era ERA <run> --header 'Name: value'`` once
        per run, at most ``WAVE`` at once (each its own ``home`` for catalog and secrets), and
        parse the JSON each prints; AssertionError naming the run if one fails.

        Each run is one session of the same caller and opens a GET stream; the gateway holds a
        caller to 4 open streams (``REMIT_MAX_STREAMS_PER_IDENTITY``, 429 ``stream_quota``
        beyond), and
        the Inspector CLI whose stream is refused prints an empty tool list rather than
        failing, so runs go in waves within that quota."""
        answers = []
        for first in range(0, len(runs), WAVE):
            answers += self._inspector_wave(url, era, runs, first, headers, home)
        return answers

    def _inspector_wave(
        self,
        url: str,
        era: str,
        runs: Sequence[Sequence[str]],
        first: int,
        headers: Mapping[str, str],
        home: Path,
    ) -> list[Any]:
        started = []
        wave = runs[first : first + WAVE]
        for index, args in enumerate(wave, start=first):
            argv = [self.node, str(self.root / "node_modules" / ".bin" / "mcp-inspector")]
            argv += ["--cli", url, "--transport", "http", "--protocol-era", era]
            for name, value in headers.items():
                argv += ["--header", f"{name}: {value}"]
            argv += list(args)
            own = home / str(index)
            own.mkdir(parents=True, exist_ok=True)
            env = {**self.env(None, ""), "HOME": str(own), "MCP_CATALOG_PATH": str(own / "c.json")}
            started.append(
                subprocess.Popen(
                    argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        answers = []
        for args, process in zip(wave, started, strict=True):
            try:
                out, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            if process.returncode != 0:
                raise AssertionError(
                    f"inspector {list(args)} failed ({process.returncode}):\n{err}"
                )
            answers.append(json.loads(out))
        return answers


@dataclass(frozen=True)
class Results:
    """Every check of one suite run: key → status (SUCCESS, FAILURE, WARNING, INFO, SKIPPED)."""

    checks: Mapping[CheckKey, str]
    messages: Mapping[CheckKey, str]

    @classmethod
    def read(cls, out: Path) -> Results:
        checks: dict[CheckKey, str] = {}
        messages: dict[CheckKey, str] = {}
        for folder in sorted(out.iterdir()):
            match = _DIR.match(folder.name)
            if match is None or not (folder / "checks.json").exists():
                continue
            scenario = match.group("scenario")
            seen: Counter[str] = Counter()
            for check in json.loads((folder / "checks.json").read_text()):
                key = (scenario, str(check["id"]), seen[check["id"]])
                seen[check["id"]] += 1
                checks[key] = str(check["status"])
                messages[key] = str(check.get("errorMessage") or "")
        return cls(checks, messages)

    def timed_out(self) -> set[str]:
        """Scenarios the suite abandoned at its timeout."""
        return {
            k[0] for k, v in self.checks.items() if k[1] == "scenario-timeout" and v != "SUCCESS"
        }

    def replace(self, other: Results, scenario: str) -> Results:
        """These results with ``scenario``'s checks taken from ``other``."""
        checks = {k: v for k, v in self.checks.items() if k[0] != scenario}
        messages = {k: v for k, v in self.messages.items() if k[0] != scenario}
        checks.update({k: v for k, v in other.checks.items() if k[0] == scenario})
        messages.update({k: v for k, v in other.messages.items() if k[0] == scenario})
        return Results(checks, messages)

    def scored(self, required: frozenset[str]) -> dict[CheckKey, str]:
        """Checks of the scenarios the requirement set scores (others run unscored)."""
        return {k: v for k, v in self.checks.items() if k[0] in required}

    def tally(self, required: frozenset[str]) -> tuple[int, int]:
        """(passed, total) over scored pass/fail checks, as the suite counts them."""
        scored = [v for v in self.scored(required).values() if v in ("SUCCESS", "FAILURE")]
        return sum(v == "SUCCESS" for v in scored), len(scored)

    def describe(self, key: CheckKey) -> str:
        return f"{key[0]}/{key[1]}#{key[2]}: {self.checks.get(key)} {self.messages.get(key, '')}"
