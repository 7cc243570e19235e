"""Answer a call that needs consent with a consent request the client can show the human.

When the engine denies a ``tools/call`` with ``consent_required`` and a consent service is
configured (``REMIT_CONSENT_URL`` and its key), the gateway seals a consent request
(``remit.policy.consentrequest``) whose id is the denial's decision record id and answers in
the form the client's protocol revision defines:

- 2025-11-25, on a session whose ``initialize`` declared ``capabilities.elicitation.url``:
  the JSON-RPC error ``URLElicitationRequiredError`` (-32042) carrying one URL-mode
  elicitation;
- 2026-07-28, when the request's ``_meta`` declares ``clientCapabilities.elicitation.url``:
  an ``input_required`` result whose ``inputRequests`` hold one URL-mode
  ``elicitation/create``;
- every other client: the usual tool error result, its text carrying the same URL.

The link goes to the MCPServer's own consent service when its ``spec.consent.url`` is set (the
bundle carries it), else to the configured or delivered one.

The session's declared capabilities are remembered per session id (bounded); a session id is
bound to its owner elsewhere (``sessions.py``), so one caller cannot borrow another's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from remit.audit.arguments import is_secret_key, redact
from remit.audit.canonical import digest_json
from remit.errors import ConsentRequestError, SettingsError
from remit.gateway.batches import Judged
from remit.gateway.hooks import Deny, HttpRequest
from remit.gateway.protocol import Message
from remit.gateway.replies import META_KEY
from remit.gateway.sessions import Owner, owner_of
from remit.gateway.settings import GatewaySettings
from remit.gateway.state import Policy
from remit.policy.consentrequest import ConsentRequest, ConsentSealer, bindings, load_consent_key
from remit.policy.decision import Reason
from remit.policy.request import Identity

URL_ELICITATION_REQUIRED = -32042
ELICITATION_KEY = "remit-consent"
_VERSION_2025 = "2025-11-25"
_VERSION_2026 = "2026-07-28"
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_DEFAULT_MAX_SECONDS = 86_400
CONSENT_PATH = "/consent"


def url_capable(capabilities: Any) -> bool:
    """Whether client capabilities declare URL-mode elicitation (``elicitation.url``)."""
    if not isinstance(capabilities, Mapping):
        return False
    elicitation = capabilities.get("elicitation")
    return isinstance(elicitation, Mapping) and isinstance(elicitation.get("url"), Mapping)


class ConsentLinks:
    """Issues consent requests for denied calls and shapes the answer per client."""

    def __init__(
        self,
        base_url: str,
        key: bytes,
        *,
        ttl: float = 900.0,
        clock: Callable[[], float] = time.time,
        max_sessions: int = 100_000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.sealer = ConsentSealer(key)
        self.ttl = ttl
        self._clock = clock
        self._pending: OrderedDict[Owner, bool] = OrderedDict()
        self._sessions: OrderedDict[str, bool] = OrderedDict()
        self._max = max_sessions

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> ConsentLinks | None:
        """Links as configured, or None when no consent service is configured."""
        links = settings.consent
        if not links.url:
            return None
        key = links.key
        if key is None and links.key_file is not None:
            key = load_consent_key(links.key_file)
        if key is None:
            raise SettingsError("REMIT_CONSENT_URL needs REMIT_CONSENT_KEY_FILE")
        return cls(links.url, key, ttl=links.request_seconds)

    def rekey(self, base_url: str, key: bytes) -> None:
        """Link to ``base_url`` and seal with ``key`` from now on (the operator delivered
        them, ``consentinbox.py``); what sessions declared is kept."""
        self.base_url = base_url.rstrip("/")
        self.sealer = ConsentSealer(key)

    # -- what each session declared --------------------------------------------------------

    def observe(self, identity: Identity, call: Message) -> None:
        """Remember what an ``initialize`` declared until the upstream names the session."""
        if call.method != "initialize":
            return
        capabilities = call.params.get("capabilities")
        self._remember(self._pending, owner_of(identity), url_capable(capabilities))

    def bind(self, session_id: str, identity: Identity) -> None:
        """The session the upstream issued: it has what its ``initialize`` declared."""
        declared = self._pending.pop(owner_of(identity), False)
        self._remember(self._sessions, session_id, declared)

    def end(self, session_id: str) -> None:
        """Forget an ended session."""
        self._sessions.pop(session_id, None)

    def _remember(self, table: OrderedDict[Any, bool], key: Any, value: bool) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._max:
            table.popitem(last=False)

    # -- answering ---------------------------------------------------------------------------

    def rewrite(
        self,
        policy: Policy,
        judged: Sequence[Judged],
        verdicts: list[Any],
        request: HttpRequest,
        session: str | None,
    ) -> list[Any]:
        """Replace each visible ``consent_required`` tool denial with a consent request."""
        out = list(verdicts)
        for index, (j, verdict) in enumerate(zip(judged, verdicts, strict=True)):
            if (
                j.decision.reason != Reason.CONSENT_REQUIRED
                or j.call.method != "tools/call"
                or not isinstance(verdict, Deny)
                or verdict.result is None
            ):
                continue
            facts = dict(verdict.result.get("_meta", {}).get(META_KEY, {}))
            record_id = str(facts.get("decisionId", ""))
            try:
                url = self.url_for(
                    self.request_for(policy, j, record_id), policy.bundle.server.consent_url
                )
            except ConsentRequestError:
                continue  # the plain denial stands
            out[index] = self.answer(j, verdict, facts, url, request, session)
        return out

    def request_for(self, policy: Policy, judged: Judged, record_id: str) -> ConsentRequest:
        """The consent request for a call denied by ``record_id``."""
        identity = judged.request.identity
        rule_id = judged.decision.rules[0] if judged.decision.rules else ""
        rule = _rule(policy, rule_id)
        arguments = dict(judged.request.arguments)
        server = policy.bundle.server
        shown = None
        if server.audit_arguments == "Redacted":
            shown = redact(arguments)
        call, fields = bindings(arguments, is_secret_key)
        if shown is None:
            fields = {}  # the page may not show values, so it cannot offer to fix them
        now = int(self._clock())
        return ConsentRequest(
            id=record_id,
            server=f"{server.namespace}/{server.name}",
            issuer=identity.issuer,
            subject=identity.subject,
            agent=identity.agent,
            tool=judged.request.name,
            tool_hash=judged.tool_hash,
            rule=rule_id,
            rule_when=rule.when if rule is not None else None,
            max_seconds=(rule.consent_max_seconds if rule is not None else None)
            or _DEFAULT_MAX_SECONDS,
            issued_at=now,
            expires_at=now + int(self.ttl),
            shown=shown,
            digest=digest_json(arguments),
            call=call,
            fields=fields,
        )

    def url_for(self, request: ConsentRequest, base_url: str | None = None) -> str:
        """The consent page's URL for ``request``: under the server's own consent service
        (``spec.consent.url``, in the bundle) when it names one, else the configured one."""
        base = base_url.rstrip("/") if base_url else self.base_url
        return f"{base}{CONSENT_PATH}?{urlencode({'r': self.sealer.seal(request)})}"

    def answer(
        self,
        judged: Judged,
        denial: Deny,
        facts: dict[str, Any],
        url: str,
        request: HttpRequest,
        session: str | None,
    ) -> Deny:
        """The denial in the form the client understands, carrying ``url``."""
        facts["consentUrl"] = url
        elicitation_id = str(facts.get("decisionId", ""))
        message = (
            f"Agent {judged.request.identity.agent!r} needs your consent to use tool "
            f"{judged.request.name!r}. Open the link to review and approve or refuse."
        )
        elicitation = {
            "mode": "url",
            "elicitationId": elicitation_id,
            "url": url,
            "message": message,
        }
        version = _version(judged.call, request)
        if version == _VERSION_2026 and url_capable(_meta(judged.call).get(_META_CAPABILITIES)):
            return Deny(
                result={
                    "resultType": "input_required",
                    "inputRequests": {
                        ELICITATION_KEY: {"method": "elicitation/create", "params": elicitation}
                    },
                    "_meta": {META_KEY: facts},
                }
            )
        if version == _VERSION_2025 and session is not None and self._sessions.get(session):
            return Deny(
                error={
                    "code": URL_ELICITATION_REQUIRED,
                    "message": "This request requires the user's consent.",
                    "data": {"elicitations": [elicitation], **facts},
                }
            )
        assert denial.result is not None
        # One text, the link before the closing "Decision record ID." clients already parse.
        content = [dict(item) for item in denial.result.get("content", [])]
        link = f"Ask the user to approve it here: {url} Decision record "
        for item in content[:1]:
            item["text"] = str(item.get("text", "")).replace("Decision record ", link, 1)
        return Deny(result={**denial.result, "content": content, "_meta": {META_KEY: facts}})


def _meta(call: Message) -> Mapping[str, Any]:
    meta = call.params.get("_meta")
    return meta if isinstance(meta, Mapping) else {}


def _version(call: Message, request: HttpRequest) -> str | None:
    declared = _meta(call).get(_META_VERSION)
    if isinstance(declared, str):
        return declared
    return request.header("mcp-protocol-version")


def _rule(policy: Policy, rule_id: str) -> Any:
    for compiled in policy.bundle.policies:
        for rule in compiled.rules:
            if rule.id == rule_id:
                return rule
    return None


__all__ = ["CONSENT_PATH", "URL_ELICITATION_REQUIRED", "ConsentLinks"]
