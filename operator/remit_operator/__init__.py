"""The Remit operator (kopf): compile, sign and push policy bundles; inject sidecars; status.

Empty until the operator lands; it depends on the policy core in ``remit``, never the reverse.
"""
