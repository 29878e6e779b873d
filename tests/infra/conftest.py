"""Deploy tests reuse the CLI fixtures: a deployment on the shared moto server, reached
through the ``daylily-workset`` entry point run as a subprocess."""

from tests.cli.conftest import make_env, module_env

__all__ = ["make_env", "module_env"]
