from __future__ import annotations

import pytest

from otel_llm_cost import _log


@pytest.fixture(autouse=True)
def _fresh_log_once_state():
    """Each test sees its own first warning."""
    _log.reset_for_tests()
    yield
