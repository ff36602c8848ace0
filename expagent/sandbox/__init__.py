"""Sandboxes: where the agent's commands run. See ``base.Sandbox`` for the interface."""
