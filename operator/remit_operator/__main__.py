"""``python -m remit_operator``: run the operator in this process (settings from REMIT_*)."""

from remit_operator.entry import run
from remit_operator.settings import Settings

if __name__ == "__main__":
    run(Settings.from_env())
