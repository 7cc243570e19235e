"""``remit grant`` against a cluster: the Kubernetes API through the ``kubernetes`` client.

``grantedBy`` is never typed: it is the username the API server authenticated for this
kubeconfig, learned with a SelfSubjectReview (authentication.k8s.io/v1), so the evidence names
who actually applied the grant. (An admission policy can then hold every writer to it.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from remit.api.common import GROUP, VERSION
from remit.api.consentgrant import ConsentGrant
from remit.cli.common import console, fail

PLURAL = ConsentGrant.PLURAL


def _clients(context: str | None) -> tuple[Any, Any]:
    """(AuthenticationV1Api, CustomObjectsApi) from the kubeconfig, or in-cluster config."""
    try:
        from kubernetes import client, config  # noqa: PLC0415 - only cluster mode needs it
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
    except ImportError:
        fail("cluster mode needs the kubernetes client: pip install 'remit[operator]'")
    try:
        config.load_kube_config(context=context)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            fail(f"no usable kubeconfig ({exc}); or use -f DIR to write YAML instead")
    return client.AuthenticationV1Api(), client.CustomObjectsApi()


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace(context: str | None) -> str:
    """The namespace kubectl would use without ``-n``: the kubeconfig context's, else ``default``.

    Without a usable kubeconfig (in a pod), the pod's own namespace, as kubectl does.
    """
    try:
        from kubernetes import config  # noqa: PLC0415 - only cluster mode needs it
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
    except ImportError:
        fail("cluster mode needs the kubernetes client: pip install 'remit[operator]'")
    try:
        contexts, current = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (ConfigException, OSError):
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"
    chosen = (
        current if context is None else next((c for c in contexts if c["name"] == context), None)
    )
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def _api_failure(action: str, exc: Exception) -> NoReturn:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    body = getattr(exc, "body", None)
    detail = ""
    if isinstance(body, (str, bytes)):
        import json  # noqa: PLC0415

        try:
            detail = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            detail = ""
    code = f" ({status} {reason})" if status else f" ({reason}: {exc})"
    fail(f"{action}{code}{': ' + detail if detail else ''}", 1)


def whoami(auth: Any) -> str:
    """The username the API server authenticates for these credentials."""
    try:
        review = auth.create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    except Exception as exc:  # noqa: BLE001 - ApiException, urllib3 errors: all one failure
        _api_failure("cannot learn who you are (SelfSubjectReview)", exc)
    username = review.status.user_info.username if review.status else None
    if not username:
        fail("the API server did not say who you are (SelfSubjectReview gave no username)", 1)
    return str(username)


def apply_grant(document_for: Callable[[str], dict[str, Any]], context: str | None) -> None:
    """Create the grant, with ``grantedBy`` the caller's authenticated username."""
    auth, custom = _clients(context)
    who = whoami(auth)
    document = document_for(who)
    meta = document["metadata"]
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, document)
    except Exception as exc:  # noqa: BLE001
        _api_failure(f"cannot create ConsentGrant {meta['namespace']}/{meta['name']}", exc)
    console.print(
        f"consentgrant {meta['namespace']}/{meta['name']} created, grantedBy {who!r} "
        "(the username the API server authenticated: SelfSubjectReview)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def revoke_grant(name: str, namespace: str, context: str | None) -> None:
    """Set ``spec.revoked: true`` (a merge patch); the grant stays as evidence."""
    _, custom = _clients(context)
    try:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"revoked": True}}
        )
    except Exception as exc:  # noqa: BLE001
        _api_failure(f"cannot revoke ConsentGrant {namespace}/{name}", exc)
    console.print(f"consentgrant {namespace}/{name} revoked", highlight=False)


def list_grants(namespace: str | None, context: str | None) -> list[dict[str, Any]]:
    """The grants of one namespace (None: all namespaces), as the API returns them."""
    _, custom = _clients(context)
    try:
        if namespace is None:
            answer = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            answer = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    except Exception as exc:  # noqa: BLE001
        _api_failure("cannot list ConsentGrants", exc)
    return list(answer.get("items") or [])
