"""The Remit operator (kopf): compile, sign and push policy bundles; inject sidecars; status.

It depends on the policy core in ``remit``, never the reverse. Importing this package registers
its handlers on kopf's default registry (settings from ``REMIT_*`` variables), which is what
``kopf run -A -m remit_operator`` needs; ``remit operator`` and the tests build their own
registry with ``remit_operator.entry.build`` instead. See docs/operator.md.
"""

from remit_operator.entry import install_default as _install_default

_install_default()
