"""Code-aware tokens for lexical (BM25) matching and for picking keys out of an issue's text.

Issue texts talk about code: ``QuerySet.bulk_create``, ``django/db/models/query.py``, ``ValueError``,
``get_feature_names_out``. A plain word tokenizer loses most of that. ``code_tokens`` keeps each identifier whole
*and* adds its parts, so an issue that says "bulk create" still meets a patch that touched ``bulk_create``:

* dotted paths are kept (``sklearn.linear_model.LogisticRegression``) and split into their names,
* file paths are kept and so is their file name (``query.py``) and its stem (``query``),
* snake_case and CamelCase are split (``get_feature_names_out`` -> ``get``, ``feature``, ``names``, ``out``;
  ``ValueError`` -> ``value``, ``error``); the whole identifier is kept too,
* everything is lower-cased; English stop words and one-character tokens are dropped.
"""

from __future__ import annotations

import functools
import re

_STOP = frozenset(
    """a an and are as at be been but by can could did do does doing for from had has have having he her his how
    i if in into is it its itself me my no nor not of on once only or our out own same she should so some such than
    that the their them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your also just like get got use used using want way one two
    may might must need shall here there's it's i'm don't doesn't didn't isn't can't won't""".split()
)

# A run of identifier characters joined by dots or slashes (paths and dotted names), e.g. a/b/c.py, x.y.Z
_COMPOUND = re.compile(r"[A-Za-z_][\w\-]*(?:[./][A-Za-z_][\w\-]*)+|[A-Za-z_]\w*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_FILE_SUFFIXES = (".py", ".pyi", ".js", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h", ".cpp", ".rb", ".txt",
                  ".rst", ".md", ".cfg", ".toml", ".yaml", ".yml", ".json", ".html")


def split_identifier(name: str) -> list[str]:
    """``get_featureNames`` -> ``["get", "feature", "names"]`` (lower-case, no empties)."""
    parts: list[str] = []
    for chunk in re.split(r"[_\-]+", name):
        if chunk:
            parts.extend(p.lower() for p in _CAMEL.findall(chunk))
    return parts


def code_tokens(text: str) -> list[str]:
    """Tokens of ``text`` for BM25: whole identifiers, dotted paths and file names, plus their parts."""
    out: list[str] = []
    for m in _COMPOUND.finditer(text or ""):
        out.extend(_word_tokens(m.group(0)))
    return out


def code_token_counts(text: str, cap: int = 4) -> dict[str, int]:
    """``code_tokens(text)`` as counts, each capped at ``cap`` (BM25 saturates anyway): for whole source files,
    where tokenising each distinct word once is an order of magnitude faster."""
    words: dict[str, int] = {}
    for word in _COMPOUND.findall(text or ""):
        words[word] = words.get(word, 0) + 1
    counts: dict[str, int] = {}
    for word, n in words.items():
        for tok in _word_tokens(word):
            counts[tok] = min(cap, counts.get(tok, 0) + n)
    return counts


@functools.lru_cache(maxsize=200_000)
def _word_tokens(word: str) -> tuple[str, ...]:
    # words repeat a lot across records (self, return, the names of a project's API): tokenise each once
    out: list[str] = []
    if "." in word or "/" in word:
        lowered = word.lower()
        out.append(lowered)
        pieces = [p for p in re.split(r"[./]", word) if p]
        if "/" in word or lowered.endswith(_FILE_SUFFIXES):
            last = pieces[-1] if pieces else ""
            # "query.py" (the file name) is a strong key on its own
            if len(pieces) >= 2 and ("." + pieces[-1].lower()) in _FILE_SUFFIXES:
                if "/" in word:
                    out.append(f"{pieces[-2].lower()}.{last.lower()}")
                pieces = pieces[:-1]
        for piece in pieces:
            out.extend(_identifier_tokens(piece))
    else:
        out.extend(_identifier_tokens(word))
    return tuple(out)


def _identifier_tokens(word: str) -> list[str]:
    parts = split_identifier(word)
    lowered = word.lower()
    tokens = []
    if len(parts) > 1 and lowered not in _STOP:
        tokens.append(lowered)
    tokens.extend(p for p in parts if len(p) > 1 and p not in _STOP and not p.isdigit())
    if len(parts) == 1 and len(lowered) > 1 and lowered not in _STOP and not tokens:
        tokens.append(lowered)
    return tokens


def mentioned_keys(text: str) -> tuple[set[str], set[str]]:
    """File names and code identifiers an issue text mentions, for matching against episodes' files/symbols.

    Returns ``(file_keys, symbol_keys)``: file keys are lower-case file names (``query.py``) and module-like dotted
    paths turned into path fragments (``db/models/query``); symbol keys are lower-case identifiers that look like
    code (contain ``_``, a capital after the first letter, or a dot), plus the last part of dotted names.
    """
    files: set[str] = set()
    symbols: set[str] = set()
    for m in _COMPOUND.finditer(text or ""):
        word = m.group(0).strip(".-/")
        if not word:
            continue
        lowered = word.lower()
        if "/" in word or lowered.endswith(_FILE_SUFFIXES):
            name = lowered.rsplit("/", 1)[-1]
            if "." in name:
                files.add(name)
            stem = lowered.rsplit(".", 1)[0] if "." in name else lowered
            if "/" in stem:
                files.add(stem)
            continue
        if "." in word:
            parts = [p for p in word.split(".") if p]
            files.add("/".join(p.lower() for p in parts))  # a module path, e.g. django.db.models.query
            for p in parts:
                if _looks_like_code(p):
                    symbols.add(p.lower())
            symbols.add(".".join(parts[-2:]).lower())
            continue
        if _looks_like_code(word):
            symbols.add(lowered)
    return files, symbols


def _looks_like_code(word: str) -> bool:
    if len(word) < 3:
        return False
    return "_" in word.strip("_") or any(c.isupper() for c in word[1:]) or word.startswith("__")
