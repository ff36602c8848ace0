"""expagent: a command-line coding agent that gets better with experience."""

__version__ = "0.1.0"
