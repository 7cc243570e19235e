"""``remit dev``: the gateway on your policy directory, with a local issuer, ready to call.

A standalone gateway needs tokens from the issuer its MCPServer names; while trying policies
there is none at hand. ``remit dev`` starts a local issuer (a login page and a token
endpoint, loopback only), points the chosen MCPServer at it, runs the gateway in front of your
MCP server and prints the MCP URL and a token for each human and agent the policies name.
``remit dev token --subject S --agent A`` asks the running issuer for more.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated

import typer
import uvloop
import yaml

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.mcpserver import MCPServer
from remit.cli.common import PolicyDir, console, errors, fail, load_valid
from remit.cli.dev_token import call, state_path, token
from remit.cli.gateway_start import started_line, unreachable, with_flags
from remit.demo.dev_issuer import DevIssuer
from remit.errors import RemitError
from remit.gateway.serve import build_standalone, run
from remit.gateway.settings import from_environment
from remit.gateway.values import Address

MAX_TOKENS = 8

dev_app = typer.Typer(
    help="Try a policy directory end to end: local issuer, gateway, ready tokens.",
    invoke_without_command=True,
    no_args_is_help=False,
)
dev_app.command("token")(token)
dev_app.command("call")(call)


def _server(resources: list[Resource], name: str | None, namespace: str | None) -> MCPServer:
    servers = [
        r for r in resources
        if isinstance(r, MCPServer)
        and (name is None or r.metadata.name == name)
        and (namespace is None or r.metadata.namespace == namespace)
    ]  # fmt: skip
    if len(servers) == 1:
        return servers[0]
    named = ", ".join(s.ref for s in resources if isinstance(s, MCPServer)) or "none"
    if not servers:
        fail(f"no MCPServer {name or ''} in the policy directory (there: {named})")
    fail(f"several MCPServers match: {named}; choose one with --server (and --namespace)")


def _example(glob: str, fill: str) -> str:
    """A name the glob matches: ``*@example.com`` gives ``dev@example.com``."""
    name = glob.replace("*", fill).replace("?", "x")
    return name if fnmatchcase(name, glob) else ""


def pairs(resources: list[Resource], server: MCPServer) -> Iterator[tuple[str, str, list[str]]]:
    """(subject, agent, groups) the policies and grants for ``server`` name, first seen first."""
    seen: set[tuple[str, str]] = set()
    namespace = server.metadata.namespace
    for r in resources:
        if isinstance(r, ConsentGrant) and r.metadata.namespace == namespace:
            key = (r.spec.subject, r.spec.agent)
            if r.spec.server == server.metadata.name and key not in seen:
                seen.add(key)
                yield (*key, [])
    for r in resources:
        if not isinstance(r, AgentPolicy) or r.metadata.namespace != namespace:
            continue
        if not any(fnmatchcase(server.metadata.name, s) for s in r.spec.servers):
            continue
        users = list(r.spec.subjects.users) if r.spec.subjects else ["*@example.com"]
        groups = list(r.spec.subjects.groups) if r.spec.subjects else []
        for agent_glob in r.spec.agents:
            agent = _example(agent_glob, "dev")
            subjects = [s for s, a in seen if a == agent and any(fnmatchcase(s, u) for u in users)]
            subject = (
                subjects[0]
                if subjects
                else next((n for u in users if (n := _example(u, "dev"))), "dev@example.com")
            )
            if agent and (subject, agent) not in seen:
                seen.add((subject, agent))
                yield subject, agent, groups if not users else []


def _policy_copy(resources: list[Resource], server: MCPServer, issuer: DevIssuer) -> Path:
    """The resources, with ``server`` authenticated by ``issuer``, in a fresh directory."""
    work = Path(tempfile.mkdtemp(prefix="remit-dev-"))
    documents = []
    for r in resources:
        document = r.dump()
        document.pop("status", None)
        if r is server:
            auth = document["spec"]["authentication"]
            auth["issuer"] = issuer.issuer
            auth["jwksUri"] = issuer.jwks_uri
        documents.append(document)
    (work / "resources.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return work


@dev_app.callback()
def dev(
    ctx: typer.Context,
    files: PolicyDir = [Path("examples")],  # noqa: B006 - typer reads the default
    upstream: Annotated[
        str, typer.Option(help="Your MCP server's URL.")
    ] = "http://127.0.0.1:8080/mcp",
    server: Annotated[str | None, typer.Option("--server", "-s", help="MCPServer name.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    listen: Annotated[
        str, typer.Option(envvar="REMIT_DEV_LISTEN", help="host:port for MCP clients.")
    ] = "127.0.0.1:9000",
    admin_listen: Annotated[
        str, typer.Option(envvar="REMIT_DEV_ADMIN_LISTEN", help="host:port of the admin API.")
    ] = "127.0.0.1:9901",
    issuer_listen: Annotated[
        str, typer.Option(envvar="REMIT_DEV_ISSUER_LISTEN", help="host:port of the issuer.")
    ] = "127.0.0.1:9902",
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the MCP server to accept connections.")
    ] = 15.0,
    audit_file: Annotated[Path, typer.Option(help="Decision records go to this file.")] = Path(
        "remit-dev.audit.jsonl"
    ),
) -> None:
    """Run the local issuer and the gateway on a policy directory until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    loaded = load_valid(files, recursive=False)
    target = _server(loaded.resources, server, namespace)
    auth = target.spec.authentication
    try:
        issuer_address = Address.parse(issuer_listen, "--issuer-listen")
        settings = with_flags(
            from_environment(dict(os.environ)),
            upstream=upstream,
            listen=listen,
            admin_listen=admin_listen,
            public_key=None,
            audit_file=audit_file,
            files=None,
        )
    except RemitError as exc:
        fail(str(exc))
    deadline = time.monotonic() + wait
    while (problem := unreachable(upstream)) and time.monotonic() < deadline:
        time.sleep(0.25)  # the MCP server may still be starting (`... &` just before)
    if problem:
        fail(problem, code=1)
    issuer = DevIssuer(auth.audience, auth.required_scopes, host=issuer_address.host,
                       port=issuer_address.port)  # fmt: skip
    try:
        issuer.start()
    except RuntimeError as exc:
        fail(f"--issuer-listen {issuer_listen}: cannot listen: {exc.__cause__ or exc}", code=1)
    state = state_path()
    copy = _policy_copy(loaded.resources, target, issuer)
    try:
        bundle = dataclasses.replace(settings.bundle, policy_dirs=(copy,))
        settings = dataclasses.replace(settings, bundle=bundle)
        try:
            gateway = build_standalone(settings, target.metadata.name, target.metadata.namespace)
        except RemitError as exc:
            fail(str(exc))

        def started() -> None:
            state.parent.mkdir(parents=True, exist_ok=True)
            mcp = gateway.settings.listen.mcp
            url = f"http://{mcp.host}:{mcp.port}{gateway.settings.upstream.mcp_path}"
            state.write_text(f"{issuer.issuer}\n{url}\n")
            _banner(url, issuer, loaded.resources, target)
            sys.stdout.flush()
            errors.print(started_line(gateway), soft_wrap=True, highlight=False, markup=False)

        try:
            uvloop.run(run(gateway, started=started))
        except RemitError as exc:
            fail(str(exc), code=1)
    finally:
        if state.is_file() and state.read_text().startswith(issuer.issuer + "\n"):
            state.unlink()
        issuer.stop()
        shutil.rmtree(copy, ignore_errors=True)


def _banner(url: str, issuer: DevIssuer, resources: list[Resource], target: MCPServer) -> None:
    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(f"MCP URL:  {url}   (MCPServer {target.ref}, audience {issuer.audience})")
    say(f"Issuer:   {issuer.issuer}   sign in at {issuer.issuer}/login (loopback, dev only)")
    say("Tokens (Authorization: Bearer ...), valid 12 h; more: remit dev token --subject S "
        "--agent A")  # fmt: skip
    for number, (subject, agent, groups) in enumerate(pairs(resources, target)):
        if number == MAX_TOKENS:
            break
        extra = f" (groups {','.join(groups)})" if groups else ""
        say(f"  {subject} via {agent}{extra}:\n    {issuer.token(subject, agent, groups)}")
