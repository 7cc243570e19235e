"""Consent requests: what the gateway asks a human to approve, sealed so only it can issue one.

When a call is denied with ``consent_required`` the gateway issues a consent request: the
server, the agent, the subject (issuer and ``sub``), the tool and its pinned definition hash,
the arguments as the audit policy lets them be shown, the rule and the longest consent it
allows, and the CEL that binds a grant to this exact call. The consent page must accept only
requests the gateway really issued and only until they expire, so the request travels as a
JWE (``dir`` + ``A256GCM`` with a key the gateway and the consent service share): altering
one byte breaks its authentication tag, and its content (arguments included) is not readable
from the link. The link names its key (``kid``, ``consentkeys.py``) so the consent service can
keep opening links sealed before a key rotation. Its id is the id of the decision record that
denied the call, so the grant's evidence and ``remit audit explain`` lead back to the exact
denial.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from remit.celcheck import check
from remit.errors import ConsentRequestError, SettingsError
from remit.policy.consentkeys import MAX_REQUEST_SECONDS, header_kid, key_id

AUDIENCE = "remit-consent"
_HEADER = {"alg": "dir", "enc": "A256GCM"}
_ALGORITHMS = ["dir", "A256GCM"]
MAX_TOKEN_CHARS = 2_400
"""A request whose token would be longer drops its arguments and their bindings: links must
stay short, and the consent page keeps the link in its session cookie across the login
(browsers refuse cookies over 4 KiB). Only the tool scope is then offered."""
KEY_BYTES = 32


def load_consent_key(path: Path) -> bytes:
    """The 32-byte key in ``path``: raw bytes, or base64 text (as a Kubernetes Secret holds)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"REMIT_CONSENT_KEY_FILE: cannot read {path}: {exc.strerror}") from exc
    if len(data) == 32:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except ValueError as exc:
        raise SettingsError("REMIT_CONSENT_KEY_FILE: not 32 bytes nor base64 of 32") from exc
    if len(key) != 32:
        raise SettingsError("REMIT_CONSENT_KEY_FILE: the key must be 32 bytes")
    return key


def new_key() -> bytes:
    """A fresh 256-bit key for sealing consent requests."""
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """One consent request. ``call`` is the CEL binding a grant to this exact call (None when
    the arguments cannot be expressed); ``fields`` the CEL fixing each argument that may be
    shown, by name; ``shown`` the arguments as the audit policy shows them."""

    id: str
    server: str
    issuer: str
    subject: str
    agent: str
    tool: str
    tool_hash: str | None
    rule: str
    rule_when: str | None
    max_seconds: int
    issued_at: int
    expires_at: int
    shown: Mapping[str, Any] | None = None
    digest: str | None = None
    call: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        """The MCPServer's namespace."""
        return self.server.partition("/")[0]

    @property
    def server_name(self) -> str:
        """The MCPServer's name."""
        return self.server.partition("/")[2]

    def claims(self) -> dict[str, Any]:
        """The sealed claims."""
        return {
            "jti": self.id,
            "aud": AUDIENCE,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "srv": self.server,
            "idp": self.issuer,
            "sub": self.subject,
            "agt": self.agent,
            "tool": self.tool,
            "th": self.tool_hash,
            "rule": self.rule,
            "when": self.rule_when,
            "max": self.max_seconds,
            "args": dict(self.shown) if self.shown is not None else None,
            "dig": self.digest,
            "call": self.call,
            "fields": dict(self.fields),
        }


class ConsentSealer:
    """Seals consent requests with the current shared key; opens those sealed with it or with
    one of the ``previous`` keys (kept during a rotation), each chosen by the link's ``kid``."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        for each in (key, *previous):
            if len(each) != KEY_BYTES:
                raise ConsentRequestError(
                    f"the consent key must be {KEY_BYTES} bytes, not {len(each)}"
                )
        self.kid = key_id(key)
        self._key = OctKey.import_key(key)
        self._keys = {key_id(k): OctKey.import_key(k) for k in (*previous, key)}

    def knows(self, token: str) -> bool:
        """Whether ``token`` names a key this sealer holds (or names none: an older link)."""
        kid = header_kid(token)
        return kid is None or kid in self._keys

    def seal(self, request: ConsentRequest) -> str:
        """The request as a compact JWE; argument bindings are dropped if it grows too long."""
        token = self._encrypt(request)
        if len(token) > MAX_TOKEN_CHARS:
            token = self._encrypt(_without_arguments(request))
        return token

    def _encrypt(self, request: ConsentRequest) -> str:
        payload = json.dumps(request.claims(), separators=(",", ":")).encode()
        header = {**_HEADER, "kid": self.kid}
        return jwe.encrypt_compact(header, payload, self._key, algorithms=_ALGORITHMS)

    def open(self, token: str, now: float) -> ConsentRequest:
        """The request in ``token`` if this key sealed it and it has not expired."""
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise ConsentRequestError("not a consent request issued by this gateway")
        kid = header_kid(token)
        key = self._key if kid is None else self._keys.get(kid)  # no kid: sealed before ids
        if key is None:
            raise ConsentRequestError(
                "not a consent request issued by this gateway (its key is unknown or retired)"
            )
        try:
            decrypted = jwe.decrypt_compact(token, key, algorithms=_ALGORITHMS)
            claims = json.loads(decrypted.plaintext or b"")
        except (JoseError, ValueError, TypeError) as exc:
            raise ConsentRequestError("not a consent request issued by this gateway") from exc
        try:
            request = _from_claims(claims)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentRequestError("the consent request is malformed") from exc
        if request.expires_at - request.issued_at > MAX_REQUEST_SECONDS:
            raise ConsentRequestError("the consent request is malformed (it lives too long)")
        if now >= request.expires_at:
            raise ConsentRequestError("this consent request has expired; ask the agent again")
        return request


def _from_claims(claims: Any) -> ConsentRequest:
    if not isinstance(claims, dict):
        raise TypeError("claims")
    if claims["aud"] != AUDIENCE:
        raise ValueError("wrong audience")
    fields = claims.get("fields") or {}
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise TypeError("fields")
    shown = claims.get("args")
    return ConsentRequest(
        id=_text(claims["jti"]),
        server=_text(claims["srv"]),
        issuer=_text(claims["idp"]),
        subject=_text(claims["sub"]),
        agent=_text(claims["agt"]),
        tool=_text(claims["tool"]),
        tool_hash=claims.get("th"),
        rule=_text(claims["rule"]),
        rule_when=claims.get("when"),
        max_seconds=int(claims["max"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        shown=shown if isinstance(shown, dict) else None,
        digest=claims.get("dig"),
        call=claims.get("call"),
        fields=fields,
    )


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def _without_arguments(request: ConsentRequest) -> ConsentRequest:
    return ConsentRequest(
        **{
            **{name: getattr(request, name) for name in request.__slots__},
            "shown": None,
            "call": None,
            "fields": {},
        }
    )


# -- binding a grant to arguments, as CEL ----------------------------------------------------


def cel_literal(value: Any) -> str:
    """A CEL literal equal to the JSON value ``value`` (strings escaped as JSON, which CEL reads).

    Raises ``ValueError`` for what CEL cannot express the same way (non-finite numbers).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cel_literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{cel_literal(str(k))}: {cel_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"unsupported argument type {type(value).__name__}")


def bindings(arguments: Mapping[str, Any], secret: Any) -> tuple[str | None, dict[str, str]]:
    """CEL for this exact call, and per argument, for a grant's ``when``.

    Values under secret-looking keys (``secret(key)``) are never written into a grant: the
    exact binding requires them present, and the same set of keys, but not their values.
    Anything CEL cannot check comes back as ``None`` (that scope is then not offered).
    """
    fields: dict[str, str] = {}
    present: list[str] = []
    for key, value in arguments.items():
        name = cel_literal(str(key))
        if secret(str(key)):
            present.append(f"{name} in args")
            continue
        try:
            clause = f"args[{name}] == {cel_literal(value)}"
        except ValueError:
            return None, {}
        if _valid(clause):
            fields[str(key)] = clause
        else:
            return None, {}
    clauses = [f"args.size() == {len(arguments)}", *fields.values(), *present]
    call = " && ".join(clauses)
    return (call if _valid(call) else None), fields


def _valid(source: str) -> bool:
    _, problem = check(source)
    return problem is None


__all__ = [
    "AUDIENCE",
    "ConsentRequest",
    "ConsentSealer",
    "bindings",
    "cel_literal",
    "load_consent_key",
    "new_key",
]
