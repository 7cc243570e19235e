"""``remit grant create|revoke|list``: ConsentGrants by command, for a directory or a cluster.

Administrators who prefer a command to YAML get the same resource either way: with ``-f DIR``
it is written as YAML into the policy directory (to commit, GitOps); without, it is applied
through the Kubernetes API (``remit.cli.grant_cluster``). ``grantedBy`` is who runs the
command: in a cluster the username the API server authenticates (a SelfSubjectReview); for a
directory ``--granted-by`` or else the local user, and the command says which it used.
"""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from remit.api.common import API_VERSION, DNS_LABEL, duration_seconds
from remit.api.consentgrant import ConsentGrant
from remit.api.loader import field_path, load
from remit.cli.common import console, errors, fail, print_json
from remit.times import utc_text

grant_app = typer.Typer(help="Create, revoke and list ConsentGrants (a directory or a cluster).")

DirOption = Annotated[
    Path | None,
    typer.Option("--filename", "-f", help="Policy directory: write YAML there (else: cluster)."),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace (default: the kubeconfig context's, as kubectl; with -f: default).",
    ),
]
ContextOption = Annotated[str | None, typer.Option(help="kubeconfig context (cluster mode).")]


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _expiry(expires_in: str | None, expires_at: datetime | None, now: datetime) -> datetime:
    if (expires_in is None) == (expires_at is None):
        fail("give exactly one of --expires-in (e.g. 8h, 7d) or --expires-at (RFC 3339)")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            fail("--expires-at needs a time zone, e.g. 2026-12-31T00:00:00Z")
        return expires_at.astimezone(UTC)
    try:
        seconds = duration_seconds(str(expires_in))
    except ValueError as exc:
        fail(f"--expires-in: {exc}")
    return (now + timedelta(seconds=seconds)).replace(microsecond=0)


def build(name: str, namespace: str, spec: dict[str, Any], granted_by: str) -> dict[str, Any]:
    """The ConsentGrant document, validated by the same model the operator uses."""
    document = {
        "apiVersion": API_VERSION,
        "kind": "ConsentGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**spec, "grantedBy": granted_by},
    }
    try:
        ConsentGrant.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{field_path(first['loc'])}: {first['msg'].removeprefix('Value error, ')}")
    return document


@grant_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The grant's name.")],
    subject: Annotated[str, typer.Option(help="The human granting consent (token `sub`).")],
    agent: Annotated[str, typer.Option(help="The agent the consent is given to.")],
    server: Annotated[str, typer.Option("--server", "-s", help="MCPServer name.")],
    tool: Annotated[list[str], typer.Option("--tool", help="Tool name or glob (repeatable).")] = [],  # noqa: B006
    resource: Annotated[list[str], typer.Option(help="Resource URI or glob (repeatable).")] = [],  # noqa: B006
    prompt: Annotated[list[str], typer.Option(help="Prompt name or glob (repeatable).")] = [],  # noqa: B006
    when: Annotated[str | None, typer.Option(help="CEL condition narrowing the consent.")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Lifetime: 30m, 8h, 7d.")] = None,
    expires_at: Annotated[datetime | None, typer.Option(help="Expiry (RFC 3339).")] = None,
    reason: Annotated[str, typer.Option(help="Why, e.g. a ticket id.")] = "",
    namespace: NamespaceOption = None,
    directory: DirOption = None,
    granted_by: Annotated[
        str | None,
        typer.Option(help="Who approves (directory mode; default: the local user)."),
    ] = None,
    context: ContextOption = None,
) -> None:
    """Grant AGENT consent to use tools on SERVER for SUBJECT, until an expiry."""
    if not re.fullmatch(DNS_LABEL, name) or len(name) > 253:
        fail(f"{name!r} is not a valid name (lowercase letters, digits and '-')")
    spec: dict[str, Any] = {"subject": subject, "agent": agent, "server": server}
    for key, values in (("tools", tool), ("resources", resource), ("prompts", prompt)):
        if _split(values):
            spec[key] = _split(values)
    if when:
        spec["when"] = when
    spec["expiresAt"] = utc_text(_expiry(expires_in, expires_at, datetime.now(UTC)), "seconds")
    if reason:
        spec["reason"] = reason
    if directory is None:
        from remit.cli.grant_cluster import apply_grant, default_namespace  # noqa: PLC0415

        if granted_by is not None:
            fail("--granted-by is for a directory: in a cluster, grantedBy is who you are")
        where = namespace or default_namespace(context)
        apply_grant(lambda who: build(name, where, spec, who), context)
        return
    namespace = namespace or "default"
    who, source = (granted_by, "--granted-by") if granted_by else (getpass.getuser(), "local user")
    document = build(name, namespace, spec, who)
    path = directory / f"{name}.consentgrant.yaml"
    if path.exists():
        fail(f"{path} exists already")
    if any(g.metadata.name == name and g.metadata.namespace == namespace
           for g in load([directory], recursive=True).of(ConsentGrant)):  # fmt: skip
        fail(f"ConsentGrant {namespace}/{name} exists already in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    console.print(
        f"wrote {path}: ConsentGrant {namespace}/{name}, grantedBy {who!r} (from the {source})",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@grant_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The grant's name.")],
    namespace: NamespaceOption = None,
    directory: DirOption = None,
    context: ContextOption = None,
) -> None:
    """Revoke a grant (spec.revoked: true), keeping it as evidence."""
    if directory is None:
        from remit.cli.grant_cluster import default_namespace, revoke_grant  # noqa: PLC0415

        revoke_grant(name, namespace or default_namespace(context), context)
        return
    namespace = namespace or "default"
    loaded = load([directory], recursive=True)
    where = loaded.sources.get(("ConsentGrant", f"{namespace}/{name}"))
    if where is None:
        fail(f"no ConsentGrant {namespace}/{name} in {directory}")
    file, _, index = where.rpartition("#")
    documents = list(yaml.safe_load_all(Path(file).read_text(encoding="utf-8")))
    documents[int(index)].setdefault("spec", {})["revoked"] = True
    Path(file).write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    console.print(f"revoked ConsentGrant {namespace}/{name} in {file}", highlight=False)


@grant_app.command("list")
def list_(
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    directory: DirOption = None,
    context: ContextOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json.")] = "text",
) -> None:
    """List grants with their phase now (Active, Expired, Revoked)."""
    if directory is None:
        from remit.cli.grant_cluster import default_namespace, list_grants  # noqa: PLC0415

        where = None if all_namespaces else namespace or default_namespace(context)
        documents = list_grants(where, context)
        grants: list[ConsentGrant] = []
        for document in documents:
            try:
                grants.append(ConsentGrant.model_validate(document))
            except ValidationError:
                errors.print(f"skipped an invalid grant: {document.get('metadata', {})}")
    else:
        grants = load([directory], recursive=True).of(ConsentGrant)
        if not all_namespaces:
            grants = [g for g in grants if g.metadata.namespace == (namespace or "default")]
    now = datetime.now(UTC)
    rows = [
        {"namespace": g.metadata.namespace, "name": g.metadata.name, "phase": g.phase(now),
         "subject": g.spec.subject, "agent": g.spec.agent, "server": g.spec.server,
         "expiresAt": utc_text(g.spec.expires_at, "seconds"),
         "grantedBy": g.spec.granted_by}
        for g in sorted(grants, key=lambda g: g.ref)
    ]  # fmt: skip
    if output == "json":
        print_json(rows)
        return
    table = Table(*(k.upper() for k in rows[0]) if rows else ("NAME",), box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row.values())
    console.print(table if rows else "no ConsentGrants", highlight=False)
