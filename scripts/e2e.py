"""`make e2e`: Remit on a real cluster, end to end, on a machine that has Docker and kind.

Creates a kind cluster (kind-config.yaml), builds the image and the example MCP server image
and loads them into the cluster, installs the chart (with Helm's Go SDK from helm-python-sdk:
no helm binary needed), applies examples/, deploys an example MCP server, checks that its pod
got the gateway sidecar and that the MCPServer reports Ready, then runs the opt-in e2e tests
(tests/e2e, REMIT_E2E=1). Missing tools or a stopped Docker daemon end with a clear message
and exit code 2; a failed step names the command and its output and exits 1.

    python scripts/e2e.py [--keep] [--skip-build] [--cluster NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "remit"
IMAGE = "remit:dev"
DEMO_IMAGE = "remit-demo-mcp:dev"
RELEASE, SYSTEM_NAMESPACE, APP_NAMESPACE = "remit", "remit-system", "agents"
EXIT_FAILED, EXIT_MISSING = 1, 2

TOOLS = {
    "docker": "Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/",
    "kind": "kind: `go install sigs.k8s.io/kind@latest` or https://kind.sigs.k8s.io/",
    "kubectl": "kubectl: https://kubernetes.io/docs/tasks/tools/",
}


class StepError(Exception):
    """A step of the e2e run failed; the message says which and why."""


def missing_tools(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The required command-line tools that are not on PATH."""
    return [tool for tool in TOOLS if which(tool) is None]


def missing_message(missing: Sequence[str]) -> str:
    """What to tell a person whose machine lacks ``missing``."""
    lines = [f"e2e: cannot run: {', '.join(missing)} not found on PATH.", "Install:"]
    lines += [f"  - {TOOLS[tool]}" for tool in missing]
    lines.append("The chart tests (pytest tests/helm) need none of these.")
    return "\n".join(lines)


def run(command: Sequence[str], *, env: dict[str, str] | None = None, quiet: bool = False) -> str:
    """Run one command; raise StepError with its output when it fails."""
    print(f"$ {' '.join(command)}", flush=True)
    try:
        result = subprocess.run(
            list(command), cwd=ROOT, env=env, capture_output=quiet, text=True, check=False
        )
    except OSError as exc:
        raise StepError(f"{command[0]}: cannot start: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(((result.stderr or "") + (result.stdout or "")).splitlines()[-20:])
        raise StepError(f"`{' '.join(command)}` exited {result.returncode}\n{tail}".rstrip())
    return result.stdout or ""


def docker_running() -> bool:
    """Whether the Docker daemon answers."""
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return result.returncode == 0


def cluster_exists(name: str) -> bool:
    """Whether kind already has a cluster called ``name``."""
    return name in run(["kind", "get", "clusters"], quiet=True).split()


def install_chart(kubeconfig: Path) -> None:
    """Install (or upgrade) the chart with Helm's Go SDK and wait for the operator."""
    try:
        import helm_python as helm  # noqa: PLC0415 - a dev dependency, only needed here
    except ImportError as exc:
        raise StepError("helm-python-sdk is not installed: pip install -e '.[dev]'") from exc
    values: dict[str, object] = {
        "image": {"repository": "remit", "tag": "dev", "pullPolicy": "IfNotPresent"},
        # The demo applies examples/grants.yaml as kind's admin, and those grants name their
        # humans in grantedBy: an explicit break-glass exemption for this throwaway cluster
        # (the chart's default exempts nobody but the consent service; docs/consent.md).
        "admission": {"grantedBy": {"exemptGroups": ["system:masters"]}},
    }
    config = helm.Config(kubeconfig_path=kubeconfig, namespace=SYSTEM_NAMESPACE)
    print(f"helm install {RELEASE} {CHART.relative_to(ROOT)} -n {SYSTEM_NAMESPACE}", flush=True)
    try:
        try:
            config.status(RELEASE)
            installed = True
        except helm.HelmError:
            installed = False
        if installed:
            config.upgrade(CHART, RELEASE, values, namespace=SYSTEM_NAMESPACE, timeout=300)
        else:
            config.install(
                CHART,
                RELEASE,
                values,
                namespace=SYSTEM_NAMESPACE,
                create_namespace=True,
                timeout=300,
                wait="watcher",
            )
    except helm.HelmError as exc:
        raise StepError(f"helm install failed: {exc}") from exc
    finally:
        config.close()


def e2e(cluster: str, *, keep: bool, build: bool) -> None:
    """Every step, in order; raises StepError at the first failure."""
    created = False
    with tempfile.TemporaryDirectory(prefix="remit-e2e-") as scratch:
        kubeconfig = Path(scratch) / "kubeconfig"
        try:
            if not cluster_exists(cluster):
                command = ["kind", "create", "cluster", "--name", cluster]
                command += ["--config", str(ROOT / "kind-config.yaml"), "--wait", "120s"]
                if os.environ.get("KIND_NODE_IMAGE"):
                    command += ["--image", os.environ["KIND_NODE_IMAGE"]]
                run(command)
                created = True
            kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", cluster], quiet=True))
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            if build:
                run(["docker", "build", "-t", IMAGE, "."])
                run(["docker", "build", "--target", "demo-mcp", "-t", DEMO_IMAGE, "."])
            for image in (IMAGE, DEMO_IMAGE):
                run(["kind", "load", "docker-image", image, "--name", cluster])
            install_chart(kubeconfig)
            kubectl = ["kubectl", "--kubeconfig", str(kubeconfig)]
            run(
                [
                    *kubectl,
                    "-n",
                    SYSTEM_NAMESPACE,
                    "rollout",
                    "status",
                    "deployment/remit",
                    "--timeout=180s",
                ]
            )
            run(
                [
                    *kubectl,
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/mcpservers.remit.dev",
                    "crd/agentpolicies.remit.dev",
                    "crd/consentgrants.remit.dev",
                ]
            )
            manifest = run(
                [*kubectl, "create", "namespace", APP_NAMESPACE, "--dry-run=client", "-o", "yaml"],
                quiet=True,
            )
            _apply_text(kubectl, manifest)
            run(
                [
                    *kubectl,
                    "apply",
                    "-f",
                    "examples/servers.yaml",
                    "-f",
                    "examples/policies.yaml",
                    "-f",
                    "examples/grants.yaml",
                ]
            )
            run([*kubectl, "apply", "-f", "scripts/e2e/files-mcp.yaml"])
            run(
                [
                    *kubectl,
                    "-n",
                    APP_NAMESPACE,
                    "rollout",
                    "status",
                    "deployment/files-mcp",
                    "--timeout=180s",
                ]
            )
            containers = run(
                [
                    *kubectl,
                    "-n",
                    APP_NAMESPACE,
                    "get",
                    "pods",
                    "-l",
                    "app=files-mcp",
                    "-o",
                    # A native sidecar (Kubernetes >= 1.29) is an init container.
                    "jsonpath={.items[0].spec.initContainers[*].name} "
                    "{.items[0].spec.containers[*].name}",
                ],
                quiet=True,
            )
            if "remit-gateway" not in containers.split():
                raise StepError(f"the files-mcp pod has no remit-gateway sidecar: {containers}")
            run(
                [
                    *kubectl,
                    "-n",
                    APP_NAMESPACE,
                    "wait",
                    "--for=condition=Ready",
                    "mcpserver/files",
                    "--timeout=120s",
                ]
            )
            print(
                run([*kubectl, "get", "mcpservers,agentpolicies,consentgrants", "-A"], quiet=True)
            )
            _pytest(env)
        finally:
            if created and not keep:
                subprocess.run(["kind", "delete", "cluster", "--name", cluster], check=False)


def _apply_text(kubectl: list[str], manifest: str) -> None:
    result = subprocess.run(
        [*kubectl, "apply", "-f", "-"], input=manifest, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise StepError(f"kubectl apply failed: {result.stderr.strip()}")


def _pytest(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "pytest", "tests/e2e", "-p", "no:cacheprovider"]
    print(f"$ REMIT_E2E=1 {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, env={**env, "REMIT_E2E": "1"}, check=False)
    if result.returncode == 5:  # pytest: no tests collected
        print("e2e: no tests in tests/e2e yet; the cluster checks above passed")
    elif result.returncode != 0:
        raise StepError(f"e2e tests failed (pytest exited {result.returncode})")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Run Remit end to end on a kind cluster.")
    parser.add_argument("--cluster", default="remit-e2e", help="kind cluster name")
    parser.add_argument("--keep", action="store_true", help="keep the cluster afterwards")
    parser.add_argument("--skip-build", action="store_true", help="use already built images")
    options = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(missing_message(missing), file=sys.stderr)
        return EXIT_MISSING
    if not docker_running():
        print(
            "e2e: cannot run: docker is installed but its daemon does not answer "
            "(`docker info` failed). Start Docker and try again.",
            file=sys.stderr,
        )
        return EXIT_MISSING
    try:
        e2e(options.cluster, keep=options.keep, build=not options.skip_build)
    except StepError as exc:
        print(f"e2e: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("e2e: interrupted", file=sys.stderr)
        return 130
    print("e2e: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
