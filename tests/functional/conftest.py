"""Monitor tests share the ``env`` fixture of tests/conftest.py."""

from tests.support.deployment import FASTQ, Env, fake

__all__ = ["FASTQ", "Env", "fake"]
