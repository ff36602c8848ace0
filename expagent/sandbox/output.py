"""What a sandboxed command printed, kept within a bound: a command that prints without end (``yes``, a runaway
loop) must not grow the caller's memory. Both backends collect output through :class:`OutputBuffer`."""

from __future__ import annotations

#: output kept per command (head and tail); the agent truncates further for the model
MAX_OUTPUT_BYTES = 8 * 1024 * 1024


class OutputBuffer:
    """Collects command output, keeping the head and the tail when it grows past the limit."""

    def __init__(self, limit: int = MAX_OUTPUT_BYTES):
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        if len(self.head) < self.half:
            room = self.half - len(self.head)
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.half:
            excess = len(self.tail) - self.half
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes of output dropped ...]\n".encode() if self.dropped else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", errors="replace")
