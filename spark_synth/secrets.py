"""Secrets out of everything spark-synth prints, logs or records: passwords in URIs, tokens in URL parameters.

A URI may carry credentials (``https://user:password@host``, ``sc://host:443/;token=...``,
``...?sig=...`` on a SAS URL, a Databricks personal access token). Error messages quote paths and URIs
so the user can see which one is wrong; this keeps the host and path and hides the secret.
"""

from __future__ import annotations

import re

HIDDEN = "***"
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^\s@]+@")
_PARAMETER = re.compile(
    r"(?P<head>[;?&](?:token|access_token|password|passwd|pwd|secret|client_secret|api_?key|access_?key|"
    r"secret_?key|sig|signature|sas|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^;&\s'\"]+",
    re.IGNORECASE)
_TOKEN = re.compile(r"\b(?:dapi|dkea|dose)[0-9a-f]{32}(?:-\d+)?\b")  # Databricks access tokens


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``***``."""
    text = _USERINFO.sub(rf"\g<head>{HIDDEN}@", text)
    text = _PARAMETER.sub(rf"\g<head>{HIDDEN}", text)
    return _TOKEN.sub(HIDDEN, text)
