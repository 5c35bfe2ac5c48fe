"""The laptop tests run without torch and triton: no kernel module is imported for them."""

import pytest


@pytest.fixture(autouse=True)
def _kernel_mode():
    """Overrides tests/conftest.py's fixture of this name, which pins stage 5 (a kernel module, so torch)."""
    yield
