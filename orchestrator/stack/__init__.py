"""A local stack for the demo and for development: Redis, the sandbox and workers as processes."""

from orchestrator.stack.local import LocalStack
from orchestrator.stack.redis_server import EmbeddedRedis, redis_answers

__all__ = ["EmbeddedRedis", "LocalStack", "redis_answers"]
