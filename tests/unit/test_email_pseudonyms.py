"""`pseudonymise_emails`: what log lines, span errors and `dlq list` show instead of an address."""

from __future__ import annotations

import logging

import pytest

from actormesh_runtime.observability.emails import email_pseudonym, pseudonymise_emails
from actormesh_runtime.observability.logging import JsonFormatter, TextFormatter

JOHN = email_pseudonym("john.doe@example.com")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET /customers/by-email/john.doe@example.com: 503", f"GET /customers/by-email/{JOHN}: 503"),
        ("write to John.Doe@Example.COM please", f"write to {JOHN} please"),
        ("GET /customers?email=john.doe%40example.com&x=1", f"GET /customers?email={JOHN}&x=1"),
        ("'john.doe@example.com'", f"'{JOHN}'"),
        ("mail x.y+z@mail.example.co.uk.", f"mail {email_pseudonym('x.y+z@mail.example.co.uk')}."),
        ("nats://admin@nats.shop.svc:4222", "nats://admin@nats.shop.svc:4222"),
        ("redis://:secret@redis.shop.svc:6379", "redis://:secret@redis.shop.svc:6379"),
        ("ORD-10002 TRK100000002 msg-4f3a", "ORD-10002 TRK100000002 msg-4f3a"),
        ("a@b and @handle", "a@b and @handle"),
    ],
    ids=["url-path", "any-case", "url-encoded", "quoted", "subdomains", "nats-user", "redis-password",
         "ids", "not-addresses"],
)  # fmt: skip
def test_addresses_become_pseudonyms_and_nothing_else_changes(text: str, shown: str) -> None:
    assert pseudonymise_emails(text) == shown


def test_one_customer_has_one_pseudonym_that_hides_the_address() -> None:
    assert email_pseudonym("John.Doe@example.com ") == email_pseudonym("john.doe%40example.com") == JOHN
    assert email_pseudonym("jane.smith@example.com") != JOHN
    assert JOHN.startswith("[EMAIL-")
    assert "john" not in JOHN


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_both_log_formats_show_the_pseudonym(formatter: logging.Formatter) -> None:
    args = ("john.doe@example.com",)
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "lookup of %s failed", args, None)
    record.error = "customers API refused (422): unknown john.doe@example.com"
    line = formatter.format(record)
    assert line.count(JOHN) == 2, line
    assert "john.doe@" not in line
