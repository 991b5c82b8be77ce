import pytest


@pytest.fixture(autouse=True)
def fresh_routing():
    """No cached relay configuration or circuit state crosses tests."""
    from app.relay import routing

    routing.reset()
    yield
    routing.reset()
