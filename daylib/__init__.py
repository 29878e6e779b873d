"""daylib: a workset orchestrator for Daylily-style genomics batch work on AWS."""

__version__ = "0.1.0"
