"""The ``capsa`` command. Later issues add the container, image and network groups."""

from __future__ import annotations

import sys

import click

from capsa import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="capsa")
def cli() -> None:
    """capsa: a container engine."""


@cli.command()
def version() -> None:
    """Show the capsa version."""
    from capsa.oci.runtime_spec import OCI_VERSION

    click.echo(f"capsa version {__version__}")
    click.echo(f"OCI runtime spec {OCI_VERSION}")


def main() -> None:
    sys.exit(cli.main(standalone_mode=True))
