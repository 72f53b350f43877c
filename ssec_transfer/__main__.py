"""`python -m ssec_transfer` runs the CLI."""

from ssec_transfer.cli.entry import entry_point

entry_point()
