"""The command line: ``python -m cola_core <command>``."""
