"""The ``remit`` command line: check, compile, validate, keys, audit, crds, gateway, demo."""
