"""One module per `vc4infer` subcommand (see vc4infer/cli.py)."""
