"""Live progress lines for agent runs (rich, on stderr)."""

from __future__ import annotations

from typing import Any

from expagent.redact import redact


def summarize_action(tool: str, arguments: dict[str, Any] | None, width: int = 70) -> str:
    if not arguments:
        text = tool
    elif tool == "bash":
        text = f"$ {arguments.get('command', '')}"
    elif "path" in arguments:
        text = f"{tool} {arguments['path']}"
    elif "pattern" in arguments:
        text = f"{tool} {arguments['pattern']}"
    elif "query" in arguments:
        text = f"{tool} {arguments['query']}"
    else:
        text = tool
    text = redact(" ".join(text.split()))  # before shortening: a cut secret would no longer be recognised
    return text if len(text) <= width else text[: width - 1] + "…"


class StepPrinter:
    """Prints one line per action: step, last action, exit code, tokens so far, cost so far."""

    def __init__(self, console, prefix: str = ""):
        self.console = console
        self.prefix = prefix

    def __call__(self, event: dict[str, Any]) -> None:
        from rich.markup import escape

        cost = event.get("cost")
        cost_text = "cost ?" if cost is None else f"${cost:.4f}"
        code = event.get("exit_code")
        mark = "[green]✓[/]" if code == 0 else f"[red]✗{code}[/]"
        action = escape(summarize_action(event["tool"], event.get("arguments")))
        self.console.print(
            f"{self.prefix}[dim]step {event['step']:>3}[/] {mark} {action}  "
            f"[dim]{event.get('tokens', 0)} tok  {cost_text}[/]"
        )
