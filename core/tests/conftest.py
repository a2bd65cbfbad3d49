import pytest
import redis
from jobq.testing import redis_test_url


@pytest.fixture
def rclient():
    c = redis.Redis.from_url(redis_test_url())
    yield c
    c.close()


def prefix_keys(client, prefix):
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000))
