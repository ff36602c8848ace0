"""The one secret detector and redactor: every place that stores or shows text goes through it.

Two ways a secret is recognised:

* **by value**: the value of every credential-looking variable of the caller's environment
  (``AWS_SECRET_ACCESS_KEY``, ``GITHUB_TOKEN``, ``DATABASE_URL``, ``MY_APIKEY``, ...; values of at
  least ``MIN_VALUE_LENGTH`` characters), plus extra values configured in ``EXPAGENT_REDACT`` (a JSON
  list, or one value per line) or registered with ``register``;
* **by pattern**: common key formats (AWS access key ids, GitHub, OpenAI/Anthropic, Slack, Google,
  Hugging Face tokens, private key blocks, ``aws_secret_access_key = ...`` lines, and the password of
  a URL ``scheme://user:password@host``).

A match is replaced by ``[REDACTED]``. ``findings`` says what was found (kinds, never the values), so
a caller can report a secret (e.g. in a patch the agent wrote) rather than silently drop it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any, Iterable, Mapping

MARK = "[REDACTED]"
MIN_VALUE_LENGTH = 8
#: variables whose values are extra secrets to redact (JSON list or one per line)
EXTRA_VAR = "EXPAGENT_REDACT"

_SECRET_NAME = re.compile(
    r"(API_?KEY|ACCESS_?KEY|SECRET|TOKEN|PASSW(OR)?D|PASSPHRASE|CREDENTIAL|PRIVATE_?KEY|AUTH|COOKIE|SESSION_?KEY|"
    r"DATABASE_URL|_DSN$|^DSN$|CONN(ECTION)?_?STR(ING)?|WEBHOOK|SIGNING_?KEY|(^|_)KEY$|(^|_)PASS$|(^|_)PWD$)",
    re.I,
)
#: names that match the words above but are not credentials
_NOT_SECRET_NAME = re.compile(r"^(PWD|OLDPWD|SSH_AUTH_SOCK|XDG_SESSION_\w+|GPG_AGENT_INFO|\w*KEYMAP\w*|"
                              r"TOKENIZERS_PARALLELISM|EXPAGENT_\w+)$", re.I)

_PATTERNS: list[tuple[str, str]] = [
    ("private-key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
                    r"(?: BLOCK)?-----|\Z)"),
    ("aws-access-key-id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
    ("aws-secret-line", r"(?<=(?i:aws_secret_access_key))(?P<sep>\s*[:=]\s*['\"]?)[A-Za-z0-9/+=]{30,}"),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    ("github-token", r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    ("openai-anthropic-key", r"\bsk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("url-password", r"(?<=://)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),
]
_PATTERN = re.compile("|".join(f"(?P<p{n}>{body})" for n, (_kind, body) in enumerate(_PATTERNS)))
_registered: set[str] = set()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a credential (by its name)."""
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.match(name)


def _extra_values(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            return [str(v) for v in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values to redact: credential-looking variables of ``environ`` (default: this process), extras."""
    environ = os.environ if environ is None else environ
    values = set(_registered)
    for name, value in environ.items():
        if name == EXTRA_VAR:
            values.update(_extra_values(value))
        elif is_secret_name(name) and _plausible_secret(value):
            values.add(value)
    return sorted((v for v in values if len(v) >= MIN_VALUE_LENGTH), key=lambda v: (-len(v), v))


def _plausible_secret(value: str) -> bool:
    """Long enough, and not something every text holds (a boolean, a number, a path on this machine)."""
    if len(value) < MIN_VALUE_LENGTH or value.isdigit() or value.lower() in ("true", "false", "none", "null"):
        return False
    return not (value.startswith("/") and os.path.exists(value))


def register(values: Iterable[str]) -> None:
    """Add secret values for the rest of this process (e.g. from configuration)."""
    _registered.update(v for v in values if v and len(v) >= MIN_VALUE_LENGTH)


@functools.lru_cache(maxsize=8)
def _value_pattern(values: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


class Redactor:
    """Finds and replaces secrets in text; built from the environment it is given (default: this process's)."""

    def __init__(self, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()):
        values = set(secret_values(environ)) | {v for v in extra if len(v) >= MIN_VALUE_LENGTH}
        self._values = _value_pattern(tuple(sorted(values, key=lambda v: (-len(v), v))))

    def findings(self, text: str) -> list[str]:
        """The kinds of secrets in ``text`` ("environment value", "github-token", ...), each once."""
        kinds: list[str] = []
        if self._values is not None and self._values.search(text):
            kinds.append("environment value")
        for match in _PATTERN.finditer(text):
            kind = _PATTERNS[int(match.lastgroup[1:])][0]
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    def scrub(self, text: str) -> tuple[str, list[str]]:
        """``text`` redacted, and the kinds of secrets that were in it (empty: nothing was changed)."""
        kinds = self.findings(text) if text else []
        return (self.redact(text) if kinds else text), kinds

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._values is not None:
            text = self._values.sub(MARK, text)
        return _PATTERN.sub(_replace, text)

    def redact_data(self, data: Any) -> Any:
        """A copy of JSON-like data (dicts, lists, strings) with every string redacted (keys included)."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.redact_data(v) for v in data]
        return data


def _replace(match: re.Match) -> str:
    kind = _PATTERNS[int(match.lastgroup[1:])][0]
    # an "aws_secret_access_key = ..." line keeps its name and "= " (the look-behind kept the name)
    return (match.group("sep") or "") + MARK if kind == "aws-secret-line" else MARK


def redactor() -> Redactor:
    """A redactor for this process's environment as it is now."""
    return Redactor()


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``[REDACTED]``."""
    return redactor().redact(text)


def redact_data(data: Any) -> Any:
    return redactor().redact_data(data)


def findings(text: str) -> list[str]:
    return redactor().findings(text)
