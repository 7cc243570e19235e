"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager.

Configured the way controller-runtime's envtest configures its API server (secure port only,
generated serving and client certificates, a service-account signing key and issuer, RBAC,
the ``ServiceAccount`` admission plugin off because no controller creates default accounts),
plus what Remit needs from a real cluster: ``Node,RBAC`` authorization, the webhook and
ValidatingAdmissionPolicy admission plugins, OwnerReferencesPermissionEnforcement (as hardened
clusters run it: setting ``blockOwnerDeletion`` needs ``update`` on the owner's ``finalizers``),
an audit log of the operator's requests (RBAC tests read it), and routing of webhook Service
references to their EndpointSlice, reached through ``PodNetwork`` (there is no kube-proxy and
no pod network). kube-controller-manager runs only
the namespace and garbage-collector controllers, so namespace deletion and owner references
behave as in a cluster. No kubelet, no scheduler: tests/kube/kubelet.py stands in for it.

Everything binds to one random loopback address (127.0.10.x to 127.0.60.x) with random ports, so
several test sessions run side by side. The binaries come from scripts/control_plane.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import ipaddress
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import control_plane  # noqa: E402 - the build script owns the pinned versions and cache path

AUDITED = "remit-system"  # the namespace whose service accounts' requests are audited
KUBERNETES_VERSION = control_plane.KUBERNETES
ETCD_VERSION = control_plane.ETCD


def binaries() -> Path | None:
    """The folder with the built binaries, or None when they are not built."""
    return control_plane.bin_dir() if control_plane.present() else None


def random_host() -> str:
    """A loopback address unlikely to be used by another test session."""
    return f"127.0.{random.randint(10, 60)}.{random.randint(2, 254)}"


# --- certificates -------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class CA:
    """A certificate authority that signs serving and client certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str) -> CA:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        hosts: tuple[str, ...] = (),
        client: bool = False,
    ) -> tuple[bytes, bytes]:
        """A (certificate PEM, key PEM) pair for a server (``hosts``) or a client."""
        key = _key()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        usage = (
            x509.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.ExtendedKeyUsageOID.SERVER_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)


# --- the API over HTTPS -------------------------------------------------------------------


ADMIN_USER = "admin"
"""The admin's user name (its certificate's CN; group system:masters). The chart's
ValidatingAdmissionPolicy holds it to ``grantedBy == ADMIN_USER`` like anyone else."""


class ApiError(Exception):
    """A request the API server refused; ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: dict[str, Any], what: str) -> None:
        super().__init__(f"{what}: {status} {body.get('message', body)}")
        self.status = status
        self.body = body
        self.message = str(body.get("message", ""))


@dataclass
class Api:
    """JSON requests to the API server as one identity, with kind → path from discovery."""

    server: str
    ca_file: str
    cert: tuple[str, str] | None = None
    token: str | None = None
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    def _client(self) -> httpx.Client:
        """One keep-alive client per thread (the kubelet stand-in polls from its own)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert:
                context.load_cert_chain(*self.cert)
            client = httpx.Client(base_url=self.server, verify=context, headers=headers, timeout=30)
            self._local.client = client
        return client

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request; raise ``ApiError`` on 4xx/5xx."""
        response = self._client().request(
            method, path, json=body, params=params, headers={"Content-Type": content_type}
        )
        try:
            data: dict[str, Any] = response.json() if response.content else {}
        except ValueError:
            data = {"message": response.text}
        if response.status_code >= 400:
            raise ApiError(response.status_code, data, f"{method} {path}")
        return data

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the API server's discovery."""
        key = (api_version, kind)
        if key not in self._resources:
            root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for item in self.request("GET", root)["resources"]:
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (
                        item["name"],
                        item["namespaced"],
                    )
        return self._resources[key]

    def path(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        sub: str | None = None,
    ) -> str:
        """REST path of a collection, object or subresource."""
        plural, namespaced = self.resource(api_version, kind)
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        parts = [root]
        if namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(plural)
        parts += [name] if name else []
        parts += [sub] if sub else []
        return "/".join(parts)

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """POST an object (its namespace from metadata or ``namespace``)."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or namespace
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], ns), obj)

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply (create or update), as ``kubectl apply --server-side`` does."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or namespace
        path = self.path(obj["apiVersion"], obj["kind"], ns, meta["name"])
        return self.request(
            "PATCH",
            path,
            obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "remit-tests", "force": "true"},
        )

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Any]:
        """The items of a collection."""
        items: list[Any] = self.request("GET", self.path(api_version, kind, namespace))["items"]
        return items

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        sub: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch."""
        path = self.path(api_version, kind, namespace, name, sub)
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete (no error when already gone)."""
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise


# --- the pod network ----------------------------------------------------------------------

POD_PREFIX = "10.244."  # pod IPs the API server sees; 10.244.X.Y is 127.0.X.Y on this machine


def pod_ip(host: str) -> str:
    """The pod-network address of a loopback address (what an EndpointSlice may hold)."""
    assert host.startswith("127.0."), host
    return POD_PREFIX + host.removeprefix("127.0.")


class PodNetwork:
    """The API server's way to pods: an HTTP CONNECT proxy on a Unix socket (egress "cluster").

    The API server refuses loopback addresses in EndpointSlices, so endpoints carry pod IPs
    (10.244.X.Y) and this proxy, like a cluster's pod network, delivers a connection for
    10.244.X.Y:P to 127.0.X.Y:P. Anything else is refused.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="pod-network", daemon=True
        )
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        future.result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            verb, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if verb != "CONNECT" or not host.startswith(POD_PREFIX) or not port.isdigit():
                writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            local = "127.0." + host.removeprefix(POD_PREFIX)
            try:
                up_reader, up_writer = await asyncio.open_connection(local, int(port))
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


# --- the processes ------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, started and stopped together."""

    bin: Path
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="remit-cp-")))
    host: str = field(default_factory=random_host)
    port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    startup_seconds: float = 0.0
    network: PodNetwork | None = None

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.folder / "ca.crt")

    @functools.cached_property
    def admin(self) -> Api:
        """The API as a cluster admin (system:masters)."""
        return Api(
            self.server,
            self.ca_file,
            cert=(str(self.folder / "admin.crt"), str(self.folder / "admin.key")),
        )

    def as_token(self, token: str) -> Api:
        """The API as whoever ``token`` authenticates."""
        return Api(self.server, self.ca_file, token=token)

    def kubeconfig(self, path: Path, *, token: str | None = None) -> Path:
        """A kubeconfig for the admin (client certificate) or for a bearer ``token``."""
        user: dict[str, Any]
        if token is None:
            user = {
                "client-certificate": str(self.folder / "admin.crt"),
                "client-key": str(self.folder / "admin.key"),
            }
        else:
            user = {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": self.ca_file},
                }
            ],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path

    def _certificates(self) -> None:
        ca = CA.create("remit-test-ca")
        (self.folder / "ca.crt").write_bytes(_pem_cert(ca.cert))
        hosts = (
            self.host,
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default.svc",
            "10.0.0.1",
        )
        cert, key = ca.issue("kube-apiserver", hosts=hosts)
        (self.folder / "apiserver.crt").write_bytes(cert)
        (self.folder / "apiserver.key").write_bytes(key)
        cert, key = ca.issue(ADMIN_USER, organizations=("system:masters",), client=True)
        (self.folder / "admin.crt").write_bytes(cert)
        (self.folder / "admin.key").write_bytes(key)
        sa = _key()
        (self.folder / "sa.key").write_bytes(_pem_key(sa))
        (self.folder / "sa.pub").write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _audit_policy(self) -> Path:
        """Record every request of the operator's service accounts (RBAC tests read it)."""
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "userGroups": [f"system:serviceaccounts:{AUDITED}"]},
                {"level": "None"},
            ],
        }
        path = self.folder / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def audit(self) -> list[dict[str, Any]]:
        """Every audited request so far (service accounts of the operator's namespace)."""
        path = self.folder / "audit.log"
        if not path.exists():
            return []
        events = []
        for line in path.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
        return events

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            ["nice", "-n", "5", *argv], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        self.procs.append(proc)

    def _wait(self, name: str, check: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError, ApiError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready in {timeout}s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        began = time.monotonic()
        self._certificates()
        client, peer = free_port(self.host), free_port(self.host)
        etcd_url = f"http://{self.host}:{client}"
        self._spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{self.host}:{peer}",
                f"--initial-advertise-peer-urls=http://{self.host}:{peer}",
                f"--initial-cluster=default=http://{self.host}:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd", lambda: httpx.get(f"{etcd_url}/health", timeout=1).status_code == 200, 30
        )
        self.port = free_port(self.host)
        folder = self.folder
        self.network = PodNetwork(folder / "pod-network.sock")
        self.network.start()
        egress = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [
                {
                    "name": "cluster",
                    "connection": {
                        "proxyProtocol": "HTTPConnect",
                        "transport": {"uds": {"udsName": str(self.network.path)}},
                    },
                }
            ],
        }
        (folder / "egress.yaml").write_text(yaml.safe_dump(egress))
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.port}",
                f"--cert-dir={folder}",
                f"--tls-cert-file={folder / 'apiserver.crt'}",
                f"--tls-private-key-file={folder / 'apiserver.key'}",
                f"--client-ca-file={folder / 'ca.crt'}",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={folder / 'sa.pub'}",
                f"--service-account-signing-key-file={folder / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=MutatingAdmissionWebhook,"
                "ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,"
                "OwnerReferencesPermissionEnforcement",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-aggregator-routing=true",
                f"--egress-selector-config-file={folder / 'egress.yaml'}",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                f"--audit-policy-file={self._audit_policy()}",
                f"--audit-log-path={folder / 'audit.log'}",
                "--audit-log-mode=blocking",
                "--v=1",
            ],
        )
        admin = self.admin
        self._wait(
            "kube-apiserver",
            lambda: admin.request("GET", "/readyz") is not None,
            90,
        )
        kubeconfig = self.kubeconfig(folder / "admin.kubeconfig")
        # scripts/control_plane.py builds it with the rest (present() requires all three)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                "--controllers=namespace-controller,garbage-collector-controller",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                "--concurrent-namespace-syncs=2",
                "--v=1",
            ],
        )
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop everything; the data is throwaway, so a slow graceful drain is cut short."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        if self.network is not None:
            self.network.stop()
        if not os.environ.get("REMIT_KEEP_CONTROL_PLANE"):
            shutil.rmtree(self.folder, ignore_errors=True)
