"""Executors run one step of a workset as a command (argv, never a shell).

``local`` runs subprocesses on this machine (demo, tests); ``slurm`` submits batch jobs.
"""
