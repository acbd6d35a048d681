import pytest


@pytest.fixture(scope="session")
def lkbot_settings() -> dict[str, str]:
    """The bot under test: ours, with our tools (the worker runs in this directory)."""
    return {"tools_module": "support_tools"}
