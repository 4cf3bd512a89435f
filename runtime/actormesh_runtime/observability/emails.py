"""`pseudonymise_emails(text)`: every email address in `text` replaced by a short pseudonym.

What the operator-facing sinks go through besides the card/SSN redaction (`pii.redact`): log lines,
span errors, the commerce client's error texts (which become retry and dead-letter reasons) and
`actormesh dlq list`. The address itself never needs to be there: the message and session ids name the
conversation. The pseudonym, `[EMAIL-<first 8 hex digits of sha256(address in lower case)>]`, is the
same for one customer everywhere, so an operator can still see that failures concern one customer and
find their lines: `printf %s john.doe@example.com | sha256sum | cut -c1-8`.
"""

from __future__ import annotations

import hashlib
import re

from actormesh_runtime.pii import redact

EMAIL_PLACEHOLDER_PREFIX = "[EMAIL-"

# "%40" too: an address in a URL's query string ("?email=john.doe%40example.com") is one as well.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+(?:@|%40)(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?![\w-])"
)
_URL_USER = re.compile(r"://[^\s/@]*$")
"""What precedes the user part of a URL ("nats://admin@nats.mesh.svc", "redis://:pw@host"): no
customer's address, and the host name it would hide is what an operator needs in that line."""


def one_address(address: str) -> re.Pattern[str]:
    """`address` as a whole address in a text, any case: with the boundaries of the address pattern
    above, so `jo@example.com` is not found inside `bojo@example.com`."""
    return re.compile(rf"(?<![\w.%+-]){re.escape(address.strip())}(?![\w-])", re.IGNORECASE)


def email_pseudonym(address: str) -> str:
    """The placeholder that stands for `address` (case does not matter, as for the mesh's lookups)."""
    digest = hashlib.sha256(address.strip().lower().replace("%40", "@").encode()).hexdigest()[:8]
    return f"{EMAIL_PLACEHOLDER_PREFIX}{digest}]"


def pseudonymise_emails(text: str) -> str:
    """`text` with every email address replaced by its pseudonym."""
    if "@" not in text and "%40" not in text:  # the common case; every log record comes here
        return text
    return _EMAIL.sub(lambda found: _replacement(text, found), text)


def _replacement(text: str, found: re.Match[str]) -> str:
    if _URL_USER.search(text, max(0, found.start() - 200), found.start()):
        return found.group()
    return email_pseudonym(found.group())


def scrubbed(text: str) -> str:
    """`text` as an operator-facing sink may keep it (a log line, a span error, a dead-letter reason):
    card numbers and SSNs redacted (`pii.redact`), then email addresses pseudonymised."""
    return pseudonymise_emails(redact(text))
