"""``python -m remit``: the same CLI as the ``remit`` console script."""

from remit.cli.main import main

main()
