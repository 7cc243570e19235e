"""A replica that stood by forgets what was deleted meanwhile before it leads again.

kopf pauses a standby's watches and its re-listing on resume reports no deletions, so a grant
revoked by deletion while this replica stood by would come back in its bundles. These tests
use the real ``Index``, ``Leadership`` and ``refresh_index`` with a scripted API answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from remit.errors import RemitError
from remit_operator.errors import KubeError
from remit_operator.index import Index
from remit_operator.leader import Leadership
from remit_operator.resync import refresh_index
from tests.support.policies import grant, resources, server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PLURALS = {
    "MCPServer": "mcpservers",
    "AgentPolicy": "agentpolicies",
    "ConsentGrant": "consentgrants",
}


def _indexed(*docs: Any, version: str = "10") -> Index:
    index = Index()
    for doc in docs:
        doc["metadata"]["resourceVersion"] = version
    for resource in resources(*docs):
        index.upsert(resource)
    return index


def test_prune_forgets_what_the_listing_lacks_and_keeps_what_is_newer() -> None:
    index = _indexed(server("files"), grant("alice"))
    gone = next(iter(index.grants))
    assert index.prune("ConsentGrant", set(), listed_at=20) == {"agents/files"}
    assert gone not in index.grants

    index = _indexed(server("files"), grant("alice"), version="30")
    assert index.prune("ConsentGrant", set(), listed_at=20) == set()  # arrived after the list
    assert len(index.grants) == 1


class ScriptedKube:
    """Answers collection GETs from ``pages`` (plural → list of pages), counting requests."""

    def __init__(self, pages: dict[str, list[dict[str, Any]]], fail: bool = False) -> None:
        self.pages = pages
        self.fail = fail
        self.paths: list[str] = []

    async def request(self, method: str, path: str) -> dict[str, Any]:
        assert method == "GET"
        self.paths.append(path)
        if self.fail:
            raise KubeError(503, "unavailable")
        plural = path.split("?", maxsplit=1)[0].rsplit("/", 1)[1]
        pages = self.pages.get(plural) or [{"items": [], "metadata": {"resourceVersion": "20"}}]
        number = int(path.split("continue=")[1]) if "continue=" in path else 0
        return pages[number]


def _item(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}}


async def test_refresh_lists_every_kind_in_pages_and_prunes_the_index() -> None:
    index = _indexed(server("files"), grant("alice"), grant("bob"))
    kept, _revoked = sorted(index.grants)
    grants = [
        {
            "items": [_item(*kept.split("/"))],
            "metadata": {"resourceVersion": "20", "continue": "1"},
        },
        {"items": [], "metadata": {"resourceVersion": "20"}},
    ]
    servers = [{"items": [_item("agents", "files")], "metadata": {"resourceVersion": "20"}}]
    kube = ScriptedKube({"consentgrants": grants, "mcpservers": servers})
    affected = await refresh_index(kube, index, PLURALS, 1)  # type: ignore[arg-type]
    assert affected == {"agents/files"}
    assert set(index.grants) == {kept}
    assert "agents/files" in index.servers
    assert sum("consentgrants" in p for p in kube.paths) == 2  # followed the continue token
    assert all("limit=1" in p for p in kube.paths)


async def test_a_standby_refreshes_before_it_leads_and_stays_standing_by_if_it_cannot() -> None:
    changes: list[bool] = []
    refreshed: list[bool] = []
    broken = False

    async def refresh() -> None:
        if broken:
            raise RemitError("listing failed")
        refreshed.append(True)

    leadership = Leadership(lambda: None, "me", changes.append, lambda: NOW, refresh)  # type: ignore[arg-type,return-value]
    await leadership.observe(True)  # first leadership: the first listing is fresh
    assert (changes, refreshed) == ([True], [])
    await leadership.observe(False)
    broken = True
    await leadership.observe(True)  # cannot refresh: keeps standing by (fail closed)
    assert (changes, leadership.leading) == ([True, False], False)
    broken = False
    await leadership.observe(True)
    assert (changes, refreshed) == ([True, False, True], [True])
    await leadership.observe(True)  # still leading: nothing to refresh
    assert refreshed == [True]
