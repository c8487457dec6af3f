"""Secrets out of everything spark-synth prints, logs or records: passwords in URIs, tokens in URL parameters.

A URI may carry credentials (``https://user:password@host``, ``sc://host:443/;token=...``,
``...?sig=...`` on a SAS URL, a Databricks personal access token). Error messages quote paths and URIs
so the user can see which one is wrong; this keeps the host and path and hides the secret.
"""

from __future__ import annotations

import re

HIDDEN = "***"
# scheme://[user[:password]@]host: the password may hold '@', '/' and ':' (unencoded secret keys do), so the
# userinfo ends at the '@' after which a whole host follows (up to an optional port, then the path or the end);
# lazy matching picks the first such '@', which keeps the path's own '@'s out of it. A user part with no
# password is a token (https://TOKEN@host) and is hidden whole.
_QUOTE = "'\"<>`"
_USERINFO = re.compile(
    rf"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/:?#{_QUOTE}]*?)(?P<colon>:[^\s{_QUOTE}]*?)?"
    rf"@(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/@?#:{_QUOTE}\[\]]+)(?=(?::\d*)?(?:[/?#;\s{_QUOTE},)\]]|$))")
_PARAMETER = re.compile(
    r"(?P<head>[;?&](?:token|access_token|password|passwd|pwd|secret|client_secret|api_?key|access_?key|"
    r"secret_?key|sig|signature|sas|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^;&\s'\"]+",
    re.IGNORECASE)
# Databricks access tokens; GitHub tokens (classic and fine-grained)
_TOKEN = re.compile(r"\b(?:(?:dapi|dkea|dose)[0-9a-f]{32}(?:-\d+)?|gh[pousr]_[A-Za-z0-9]{36,}|"
                    r"github_pat_[A-Za-z0-9_]{22,})\b")


def _userinfo(match: re.Match[str]) -> str:
    """The URI with its password hidden (the user name kept), or its whole user part when that is a token."""
    if match["colon"] is not None:
        return f"{match['head']}{match['user']}:{HIDDEN}@{match['host']}"
    return f"{match['head']}{HIDDEN}@{match['host']}"


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``***``."""
    text = _USERINFO.sub(_userinfo, text)
    text = _PARAMETER.sub(rf"\g<head>{HIDDEN}", text)
    return _TOKEN.sub(HIDDEN, text)
