"""``python -m claimready``."""

from claimready.cli.app import main

main()
