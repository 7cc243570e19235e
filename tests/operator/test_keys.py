"""The signing key: kept in a Secret, rotated without ever leaving a sidecar unable to verify."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import kmock

from remit.demo.issuer import Issuer
from remit.policy.signing import generate_key, public_key
from remit_operator.keys import Keyring, keyring_from_secret, secret_for
from tests.operator.support import (
    AUDIENCE,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    admission_review,
    app_pod,
    apply,
    eventually,
    fleet,
    operator_settings,
    patched,
    running_operator,
    send_review,
    stored,
)
from tests.support.policies import policy, rule


def _jwk(key: object, private: bool) -> str:
    return json.dumps(key.as_dict(private=private))  # type: ignore[attr-defined]


def test_keyring_prefers_the_key_a_sidecar_started_with() -> None:
    old, new = generate_key(), generate_key()
    keyring = Keyring(new, old)
    assert [k.kid for k in keyring.candidates(old.kid)] == [old.kid, new.kid]
    assert [k.kid for k in keyring.candidates(None)] == [new.kid, old.kid]
    data = keyring.public_data()
    assert json.loads(data["public.jwk"]) == public_key(new).as_dict(private=False)
    assert json.loads(data["previous.jwk"])["kid"] == old.kid


def test_secret_round_trip_and_chart_given_pem(tmp_path: Path) -> None:
    key = generate_key()
    secret = secret_for(key, operator_settings(tmp_path))
    assert keyring_from_secret(secret).kid == key.kid
    pem = base64.b64encode(key.as_pem(private=True)).decode()
    assert keyring_from_secret({"data": {"private.pem": pem}}).active.kid == key.kid


async def test_rotation_keeps_every_sidecar_verifying(
    k8s: kmock.KubernetesEmulator, issuer: Issuer, upstream: str, tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    settings = operator_settings(tmp_path)
    secret = secret_for(old, settings)
    k8s.objects["v1/secrets", OPERATOR_NAMESPACE, settings.signing.secret] = secret
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    async with (
        running_operator(k8s, settings) as first,
        fleet(k8s, first, issuer.issuer, issuer.jwks_uri, upstream, 2, tmp_path) as files,
    ):
        assert first.runtime.keyring.kid == old.kid
        await first.stop()
        # Rotation, step 1: the new key becomes active, the old one stays as previous.
        rotated = {
            "private.jwk": base64.b64encode(_jwk(new, True).encode()).decode(),
            "previous.jwk": base64.b64encode(_jwk(old, True).encode()).decode(),
        }
        response = await k8s.patch(
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{settings.signing.secret}",
            json={"data": rotated},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status < 300
        async with running_operator(k8s, settings) as second:
            files.operator = second
            before = files.server_digest()
            await apply(k8s, policy("support-bot", rule("read", tools=["read_*"])))
            await files.in_sync(previous=before)  # old-key sidecars still take new bundles
            assert await files.decide_all(token, "read_file", {"path": "/data/readme.txt"}) == {
                "allowed"
            }
            configmap = stored(
                k8s, "v1/configmaps", NAMESPACE, settings.signing.public_key_configmap
            )
            assert configmap is not None
            assert json.loads(configmap["data"]["public.jwk"])["kid"] == new.kid
            assert json.loads(configmap["data"]["previous.jwk"])["kid"] == old.kid
            pod = app_pod("files-new")
            injected = patched(pod, await send_review(settings, admission_review(pod)))
            assert injected["metadata"]["annotations"]["remit.dev/bundle-key-id"] == new.kid
            # A pod started after the rotation mounts the new key, and verifies too.
            async with fleet(
                k8s, second, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path, first_ip=9
            ) as newer:
                await eventually(lambda: newer.server_digest() == files.server_digest())
                assert await newer.decide_all(token, "read_file", {"path": "/data/readme.txt"}) == {
                    "allowed"
                }
