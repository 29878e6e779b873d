"""The command handlers behind ``daylily-workset``, one module per concern.

``daylib.cli`` owns the parser and the dispatch; each ``cmd_*`` here takes the lazily built
``Context`` and the parsed arguments and returns an exit code.
"""
