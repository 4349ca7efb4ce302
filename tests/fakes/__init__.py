"""Fake external services for tests, benchmarks and local runs (real HTTP on 127.0.0.1)."""

from tests.fakes.platforms import (
    FakePlatforms,
    FakeRobot,
    ManualClock,
    PlatformEnv,
    Received,
    deliver,
    platform_env,
    send,
)

__all__ = [
    "FakePlatforms",
    "FakeRobot",
    "ManualClock",
    "PlatformEnv",
    "Received",
    "deliver",
    "platform_env",
    "send",
]
