"""Further ``ifl`` subcommands, one module per stage; each registers itself with
:func:`ifl.cli.command` when imported by :func:`ifl.cli.main`."""
