"""``python -m remit.gateway``: the sidecar, configured by ``REMIT_*`` variables."""

from remit.gateway.sidecar import main

raise SystemExit(main())
