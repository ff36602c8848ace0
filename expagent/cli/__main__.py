"""``python -m expagent.cli``: the same command line as ``expagent``."""

from expagent.cli import main

main()
