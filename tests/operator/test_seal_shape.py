"""What the injection seal and the pod's shape prove about what answers on the admin port.

A pod author who copies a sealed gateway into a pod of their own may add what runs inside the
gateway (a ``postStart`` hook, an exec probe), what binds its ports first (a native sidecar
ordered before it, the node's network), or what reaches into it (a shared process namespace,
an ephemeral container added later): none of these counts as a sidecar, and the webhook
refuses a CREATE carrying such a gateway.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit_operator.errors import InjectionError
from remit_operator.index import Index, gateway_spec, sidecar_from_pod
from remit_operator.seal import container_digest
from remit_operator.settings import Settings
from remit_operator.trust import sort_sidecars
from remit_operator.webhook import inject
from tests.operator.support import app_pod, server_doc

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
_DOC = server_doc("https://idp.example", "https://idp.example/jwks", 8443, 9901)
_DOC["metadata"]["uid"] = "uid-1"
SERVER = MCPServer.model_validate(_DOC)
Pod = dict[str, Any]


def _injected(*, native: bool = True) -> Pod:
    return inject(app_pod("files-1"), SERVER, Settings(), KEY, native=native)


def _running(pod: Pod) -> Pod:
    pod = copy.deepcopy(pod)
    pod["metadata"]["uid"] = "pod-uid-1"
    pod["metadata"]["creationTimestamp"] = "2026-12-02T00:00:00Z"
    pod["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    return pod


def _counted(pod: Pod) -> tuple[bool, str]:
    sidecar = sidecar_from_pod(_running(pod))
    assert sidecar is not None
    trusted, refused, _ = sort_sidecars(SERVER, [sidecar], [KEY])
    return bool(trusted), refused[0][1] if refused else ""


def _gateway(pod: Pod) -> dict[str, Any]:
    found = gateway_spec(pod["spec"])
    assert isinstance(found, dict)
    return found


def _set(path: str, value: Any) -> Callable[[Pod], None]:
    def edit(pod: Pod) -> None:
        target: Any = _gateway(pod)
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        target[last] = value

    return edit


EXEC = {"exec": {"command": ["sh", "-c", "evil"]}}
SEAL_BREAKERS: dict[str, Callable[[Pod], None]] = {
    "lifecycle.postStart exec": _set("lifecycle", {"postStart": EXEC}),
    "lifecycle.preStop http": _set("lifecycle", {"preStop": {"httpGet": {"port": 1}}}),
    "liveness probe turned exec": _set("livenessProbe", EXEC),
    "startup probe to another port": _set("startupProbe.httpGet.port", 9999),
    "readiness probe to another path": _set("readinessProbe.httpGet.path", "/x"),
    "workingDir": _set("workingDir", "/tmp"),
    "stdin": _set("stdin", True),
    "tty": _set("tty", True),
    "mount subPathExpr": _set("volumeMounts.0.subPathExpr", "$(POD)"),
    "mount propagation": _set("volumeMounts.0.mountPropagation", "Bidirectional"),
    "mount recursiveReadOnly": _set("volumeMounts.0.recursiveReadOnly", "Disabled"),
}


def test_the_seal_covers_what_runs_in_the_gateway_and_what_it_mounts() -> None:
    assert _counted(_injected()) == (True, "")
    for what, edit in SEAL_BREAKERS.items():
        pod = _injected()
        edit(pod)
        assert _counted(pod) == (False, "not sealed by the webhook for this server"), what


def test_fields_the_api_server_defaults_do_not_break_the_seal() -> None:
    pod = _injected()
    gateway = _gateway(pod)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        gateway[probe]["httpGet"]["scheme"] = "HTTP"
        gateway[probe] |= {"timeoutSeconds": 1, "successThreshold": 1}
    gateway["terminationMessagePath"] = "/dev/termination-log"
    gateway["imagePullPolicy"] = "IfNotPresent"
    assert _counted(pod) == (True, "")


SHAPES: dict[str, tuple[Callable[[Pod], None], str]] = {
    "hostNetwork": (lambda p: p["spec"].update(hostNetwork=True), "sets hostNetwork"),
    "hostPID": (lambda p: p["spec"].update(hostPID=True), "sets hostPID"),
    "hostIPC": (lambda p: p["spec"].update(hostIPC=True), "sets hostIPC"),
    "shareProcessNamespace": (
        lambda p: p["spec"].update(shareProcessNamespace=True),
        "sets shareProcessNamespace",
    ),
    "a native sidecar before the gateway": (
        lambda p: p["spec"]["initContainers"].insert(
            0, {"name": "squat", "image": "evil", "restartPolicy": "Always"}
        ),
        "init container squat starts before the gateway",
    ),
    "a plain init container before the gateway": (
        lambda p: p["spec"]["initContainers"].insert(0, {"name": "setup", "image": "x"}),
        "init container setup starts before the gateway",
    ),
}


def test_a_pod_whose_shape_lets_something_else_pose_as_its_gateway_is_refused() -> None:
    for what, (edit, why) in SHAPES.items():
        pod = _injected()
        edit(pod)
        trusted, refused = _counted(pod)
        assert not trusted, what
        assert why in refused, what
        assert "pose as its gateway" in refused, what
        # The webhook refuses such a pod at creation (it puts its gateway first itself).
        fresh = app_pod("p")
        edit(fresh | {"spec": fresh["spec"] | {"initContainers": []}})
        if fresh["spec"] != app_pod("p")["spec"]:
            with pytest.raises(InjectionError, match="could answer on its ports"):
                inject(fresh, SERVER, Settings(), KEY, native=True)
    # A plain-container gateway beside the pod's own native sidecar (they start first).
    pod = _injected(native=False)
    assert _counted(pod) == (True, "")
    pod["spec"]["initContainers"] = [{"name": "mine", "image": "x", "restartPolicy": "Always"}]
    assert "native sidecar(s) mine start before the gateway" in _counted(pod)[1]
    spec = {"containers": [{"name": "app", "image": "a"}], **{"initContainers": []}}
    spec["initContainers"] = pod["spec"]["initContainers"]
    with pytest.raises(InjectionError, match="native sidecar"):
        inject(app_pod("p") | {"spec": spec}, SERVER, Settings(), KEY, native=False)


def test_the_native_gateway_is_the_first_init_container_and_its_place_is_sealed() -> None:
    pod = app_pod("files-1")
    pod["spec"]["initContainers"] = [
        {"name": "setup", "image": "x"},
        {"name": "mine", "image": "x", "restartPolicy": "Always"},
    ]
    injected = inject(pod, SERVER, Settings(), KEY, native=True)
    names = [c["name"] for c in injected["spec"]["initContainers"]]
    assert names == ["remit-gateway", "setup", "mine"]
    assert _counted(injected) == (True, "")
    # The same gateway as a plain container (restartPolicy dropped too): not what was sealed.
    moved = copy.deepcopy(injected)
    gateway = moved["spec"]["initContainers"].pop(0)
    gateway.pop("restartPolicy")
    moved["spec"]["containers"].append(gateway)
    assert _counted(moved)[1].startswith("native sidecar(s) mine start before the gateway")
    moved["spec"]["initContainers"] = [{"name": "setup", "image": "x"}]
    assert _counted(moved) == (False, "not sealed by the webhook for this server")
    # The digest covers the place itself: the same container one init container later differs.
    spec = copy.deepcopy(injected["spec"])
    before = container_digest(spec["initContainers"][0], spec)
    spec["initContainers"].insert(0, spec["initContainers"].pop(1))
    assert container_digest(spec["initContainers"][1], spec) != before


def test_an_ephemeral_container_added_later_re_sorts_the_pod() -> None:
    index = Index()
    pod = _running(_injected())
    first = sidecar_from_pod(pod)
    assert first is not None
    assert first.exposed is None
    index.upsert_pod(first)
    pod["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox"}]
    later = sidecar_from_pod(pod)
    assert later is not None
    assert index.upsert_pod(later) == {later.server}  # the update wakes its server's syncer
    refused = sort_sidecars(SERVER, [later], [KEY]).refused
    assert "ephemeral container(s) debugger" in refused[0][1]


def test_the_webhook_refuses_a_pod_carrying_a_gateway_it_did_not_seal() -> None:
    genuine = _injected()
    # Its own re-invocation (reinvocationPolicy: IfNeeded): unchanged.
    assert inject(genuine, SERVER, Settings(), KEY, native=True) == genuine
    # Under a key rotated out since, still its own.
    other = OKPKey.generate_key("Ed25519", parameters={"kid": "k2"})
    assert inject(genuine, SERVER, Settings(), other, keys=[other, KEY]) == genuine
    for what, edit in SEAL_BREAKERS.items():
        pod = copy.deepcopy(genuine)
        edit(pod)
        with pytest.raises(InjectionError, match="seal does not verify"):
            inject(pod, SERVER, Settings(), KEY, native=True)
        assert what
    unsealed = copy.deepcopy(genuine)
    del unsealed["metadata"]["annotations"]["remit.dev/injection-seal"]
    with pytest.raises(InjectionError, match="did not inject"):
        inject(unsealed, SERVER, Settings(), KEY, native=True)
