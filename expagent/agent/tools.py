"""The agent's tools. Each is a small function over the ``Sandbox`` interface, so every backend gets them.

A tool never raises for a bad call: it returns an error message for the model to read.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from expagent.sandbox.base import Sandbox


@dataclass
class ToolResult:
    output: str
    exit_code: int = 0
    error: bool = False
    submitted: bool = False
    oom_killed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    run: Callable[[Sandbox, dict[str, Any]], ToolResult]

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of a long output, with a note saying how much was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit // 2]
    tail = text[-(limit - limit // 2) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut} characters omitted; narrow the command (grep, head, tail) to see them ...]\n{tail}"


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _str(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


def _int(description: str) -> dict[str, str]:
    return {"type": "integer", "description": description}


class ToolBox:
    """The tools of one run, bound to its limits (command timeout, output size)."""

    def __init__(self, command_timeout: float = 180.0, output_limit: int = 10000):
        self.command_timeout = command_timeout
        self.output_limit = output_limit
        self.tools: dict[str, Tool] = {}
        for tool in (
            Tool("bash", "Run a shell command in the repository (bash). Non-interactive; no network.",
                 _obj({"command": _str("the command"), "timeout": _int("seconds (optional)")}, ["command"]), self._bash),
            Tool("view", "Show a file with line numbers (optionally a line range), or list a directory.",
                 _obj({"path": _str("file or directory"), "start": _int("first line (1-based)"),
                       "end": _int("last line")}, ["path"]), self._view),
            Tool("edit", "Replace an exact string in a file. `old` must occur exactly once.",
                 _obj({"path": _str("file"), "old": _str("exact text to replace"), "new": _str("replacement")},
                      ["path", "old", "new"]), self._edit),
            Tool("create", "Create a new file with the given content.",
                 _obj({"path": _str("file to create"), "content": _str("full content")}, ["path", "content"]),
                 self._create),
            Tool("search", "Search the repository for a regular expression; prints file:line:text.",
                 _obj({"pattern": _str("regular expression"), "path": _str("directory or file (optional)")},
                      ["pattern"]), self._search),
            Tool("submit", "Finish: submit the changes made so far as the fix.", _obj({}, []), self._submit),
        ):
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self.tools[tool.name] = tool

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    def execute(self, sandbox: Sandbox, name: str, arguments: dict[str, Any] | None) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult(f"error: unknown tool {name!r}; available: {', '.join(self.tools)}", 1, error=True)
        if arguments is None:
            return ToolResult(f"error: the arguments of {name} must be a JSON object", 1, error=True)
        missing = [p for p in tool.parameters.get("required", []) if p not in arguments]
        if missing:
            return ToolResult(f"error: {name} needs argument(s): {', '.join(missing)}", 1, error=True)
        try:
            return tool.run(sandbox, arguments)
        except (OSError, UnicodeError, ValueError, TypeError) as exc:
            return ToolResult(f"error: {name} failed: {exc}", 1, error=True)

    # -- the tools --------------------------------------------------------
    def _bash(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        timeout = min(float(args.get("timeout") or self.command_timeout), self.command_timeout)
        result = sandbox.run(str(args["command"]), timeout=timeout)
        output = truncate(result.output, self.output_limit)
        if result.oom_killed:
            output += "\n[the sandbox was killed by its memory limit]"
        elif result.timed_out:
            output += f"\n[command timed out after {timeout:g} s and was killed]"
        return ToolResult(output or "(no output)", result.exit_code, oom_killed=result.oom_killed)

    def _view(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        path = str(args["path"])
        probe = sandbox.run(f"test -d {shlex.quote(path)}", timeout=30)
        if probe.exit_code == 0:
            listing = sandbox.run(
                f"find {shlex.quote(path)} -maxdepth 2 -not -path '*/.git*' | sort | head -300", timeout=30
            )
            return ToolResult(listing.output)
        try:
            text = sandbox.read_file(path)
        except FileNotFoundError:
            return ToolResult(f"error: no such file: {path}", 1, error=True)
        lines = text.splitlines()
        start = max(int(args.get("start") or 1), 1)
        end = min(int(args.get("end") or len(lines)), len(lines))
        if lines and start > len(lines):
            return ToolResult(f"error: {path} has only {len(lines)} lines", 1, error=True)
        numbered = "\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(start, end + 1))
        return ToolResult(truncate(numbered, self.output_limit) or "(empty file)")

    def _edit(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        path, old, new = str(args["path"]), str(args["old"]), str(args["new"])
        try:
            text = sandbox.read_file(path)
        except FileNotFoundError:
            return ToolResult(f"error: no such file: {path}", 1, error=True)
        if not old:
            return ToolResult("error: `old` is empty; use create to write a new file", 1, error=True)
        count = text.count(old)
        if count == 0:
            return ToolResult(f"error: the text to replace was not found in {path}; view the file and copy it exactly",
                              1, error=True)
        if count > 1:
            lines = [text[:i].count("\n") + 1 for i in _find_all(text, old)]
            return ToolResult(f"error: the text to replace occurs {count} times in {path} (lines "
                              f"{', '.join(map(str, lines))}); include more context to make it unique", 1, error=True)
        updated = text.replace(old, new, 1)
        sandbox.write_file(path, updated)
        first = text[: text.index(old)].count("\n") + 1
        snippet = updated.splitlines()[max(first - 3, 0) : first + new.count("\n") + 3]
        shown = "\n".join(f"{max(first - 2, 1) + i:6d}\t{line}" for i, line in enumerate(snippet))
        return ToolResult(f"edited {path}; the region now reads:\n{shown}")

    def _create(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        path = str(args["path"])
        exists = sandbox.run(f"test -e {shlex.quote(path)}", timeout=30)
        if exists.exit_code == 0:
            return ToolResult(f"error: {path} already exists; use edit to change it", 1, error=True)
        sandbox.write_file(path, str(args["content"]))
        return ToolResult(f"created {path}")

    def _search(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        pattern, where = shlex.quote(str(args["pattern"])), shlex.quote(str(args.get("path") or "."))
        command = (
            f"if command -v rg >/dev/null; then rg -n --no-heading -e {pattern} {where}; "
            f"else grep -rnE --exclude-dir=.git -e {pattern} {where}; fi | head -200"
        )
        result = sandbox.run(command, timeout=self.command_timeout)
        return ToolResult(truncate(result.output, self.output_limit) or "no matches")

    def _submit(self, sandbox: Sandbox, args: dict[str, Any]) -> ToolResult:
        return ToolResult("submitted", submitted=True)


def _find_all(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start != -1:
        found.append(start)
        start = text.find(needle, start + 1)
    return found
