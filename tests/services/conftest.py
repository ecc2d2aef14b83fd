from tests.services.fixtures import postgres_server, redis_server  # noqa: F401
