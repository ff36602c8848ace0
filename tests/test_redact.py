"""The one secret detector: by value (credential-looking variables, configured extras) and by pattern."""

from __future__ import annotations

import json

import pytest

from expagent.redact import MARK, Redactor, is_secret_name, register, secret_values

# fake credentials in the shapes real ones have (none is valid anywhere)
PATTERNED = {
    "aws-access-key-id": "AKIAQWERTYUIOPASDFGH",
    "github-token": "ghp_" + "x1Y2z3W4v5U6t7S8r9Q0p1O2n3M4l5K6j7I8",
    "openai-anthropic-key": "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2",
    "slack-token": "xoxb-1234567890-abcdefABCDEF",
    "google-api-key": "AIza" + "S" * 35,
    "huggingface-token": "hf_" + "a" * 34,
}


@pytest.mark.parametrize("kind,secret", sorted(PATTERNED.items()))
def test_common_key_formats_are_found_and_replaced(kind, secret):
    text = f"config: value={secret} trailing"
    redactor = Redactor(environ={})
    assert redactor.findings(text) == [kind]
    assert redactor.redact(text) == f"config: value={MARK} trailing"


def test_private_key_blocks_url_passwords_and_aws_secret_lines():
    redactor = Redactor(environ={})
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    text = (f"before\n{key}\nafter https://deploy:hunter22@git.example.com/x.git\n"
            "aws_secret_access_key = wJalrXUtnFEMIzK7MDENGzbPxRfiCYzzEXAMPLEKEY\n")
    out = redactor.redact(text)
    assert "PRIVATE KEY" not in out and "b3BlbnNzaC1rZXktdjE" not in out and out.startswith("before\n")
    assert "https://[REDACTED]@git.example.com/x.git" in out and "hunter22" not in out
    assert "aws_secret_access_key = [REDACTED]" in out
    assert set(redactor.findings(text)) == {"private-key", "url-password", "aws-secret-line"}


def test_values_of_credential_looking_variables_are_redacted_wherever_they_appear():
    environ = {"DATABASE_URL": "postgres-plain-value-123", "MY_APIKEY": "opaque-value-0987", "STRIPE_SECRET": "s" * 12,
               "SHORT_TOKEN": "abc", "PATH": "/usr/bin:/bin", "PWD": "/home/someone/project-x",
               "TOKENIZERS_PARALLELISM": "false", "NUMERIC_KEY": "123456789012"}
    assert set(secret_values(environ)) == {"postgres-plain-value-123", "opaque-value-0987", "s" * 12}
    redactor = Redactor(environ=environ)
    text = "db=postgres-plain-value-123 key=opaque-value-0987 path=/usr/bin:/bin short=abc"
    assert redactor.redact(text) == f"db={MARK} key={MARK} path=/usr/bin:/bin short=abc"
    assert redactor.findings(text) == ["environment value"]


def test_secret_names():
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "OPENAI_API_KEY", "MY_APIKEY",
                 "DATABASE_URL", "DB_PASSWORD", "SENTRY_DSN", "SLACK_WEBHOOK_URL", "GOOGLE_APPLICATION_CREDENTIALS",
                 "DEPLOY_KEY", "SMTP_PASS"):
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "PWD", "OLDPWD", "LANG", "SSH_AUTH_SOCK", "TOKENIZERS_PARALLELISM", "KEYMAP",
                 "EXPAGENT_MEMORY_TOKEN_BUDGET", "PYTHONPATH"):
        assert not is_secret_name(name), name


def test_configured_extra_values(monkeypatch):
    monkeypatch.setenv("EXPAGENT_REDACT", json.dumps(["internal-hostname-42", "x"]))
    assert Redactor().redact("ssh internal-hostname-42 x") == f"ssh {MARK} x"  # too short values are ignored
    monkeypatch.setenv("EXPAGENT_REDACT", "first-extra-value\nsecond-extra-value\n")
    assert Redactor().redact("first-extra-value second-extra-value") == f"{MARK} {MARK}"
    register(["registered-value-77"])
    assert MARK in Redactor(environ={}).redact("registered-value-77")


def test_structured_data_is_redacted_leaving_everything_else_alone():
    redactor = Redactor(environ={"API_TOKEN": "tok-value-abcdef"})
    data = {"a": ["tok-value-abcdef", 3, None, {"k": "ghp_" + "q" * 36}], "n": 1.5, "tok-value-abcdef": True}
    assert redactor.redact_data(data) == {"a": [MARK, 3, None, {"k": MARK}], "n": 1.5, MARK: True}


def test_ordinary_code_is_not_touched():
    code = ("def password(user):\n    token = get_token(user)\n    return f'{user}:{token}'\n"
            "url = 'https://example.com/path'\nkey = os.environ['API_KEY']\n")
    assert Redactor(environ={}).redact(code) == code and Redactor(environ={}).findings(code) == []
