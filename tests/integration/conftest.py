"""Integration fixtures: each kind lives in its own module and is re-exported here.

``pytest_plugins`` is refused in a conftest below the rootdir, so fixture modules are imported
instead: add one import line per module.
"""

from tests.integration.lane_fixture import flights, lane  # noqa: F401
from tests.integration.receiver_fixture import receiver  # noqa: F401
from tests.integration.sandbox_fixture import (  # noqa: F401
    sandbox,
    sandbox_factory,
    sandbox_server,
    sandbox_settings,
)
from tests.integration.sentinel_fixture import topology  # noqa: F401
from tests.integration.state_fixture import (  # noqa: F401
    dead_letters,
    key_prefix,
    make_store,
    redis_client,
    redis_url,
    store,
)
from tests.integration.worker_fixture import queue_stack, stack_overrides  # noqa: F401
