"""Deploy tests reuse the CLI fixtures (a deployment on the shared moto server, reached
through the ``daylily-workset`` entry point run as a subprocess) and the session's Slurm."""

from tests.cli.conftest import make_env, module_env
from tests.slurm.conftest import slurm_cluster

__all__ = ["make_env", "module_env", "slurm_cluster"]
