"""random_value: the generated keys and passwords (their use on a real API server and nats-server is
tested in tests/integration/operator/test_operator_security.py and test_nats_permissions_server.py)."""

from __future__ import annotations

import math
import string

import pytest

from actormesh_operator.reconcile.generated import ALPHABET, random_value


@pytest.mark.parametrize("nbytes", [32, 48])
def test_values_are_long_plain_words_with_enough_entropy(nbytes: int) -> None:
    values = [random_value(nbytes) for _ in range(200)]
    for value in values:
        assert value[0] in string.ascii_letters  # nats-server reads a digit-led value as a number
        assert set(value) <= set(ALPHABET)
        assert len(value.encode()) >= nbytes  # the gateway refuses keys under 32 bytes
        assert (len(value) - 1) * math.log2(len(ALPHABET)) >= nbytes * 8
    assert len(set(values)) == len(values)
