"""The consent service: where a human answers an agent's consent request (docs/consent.md).

A top-level application like the gateway (its sibling in the layers): the consent pages
(``app``, ``answers``, ``mine``), the login (``login``), the grant an approval makes
(``grants``), where grants are kept (``store``, ``kube``) and its settings.
"""
