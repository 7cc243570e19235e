"""``python -m remit``: the same CLI as the ``remit`` console script."""

from remit.cli.entry import main

main()
