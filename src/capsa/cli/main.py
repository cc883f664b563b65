"""The ``capsa`` command: global options, the engine, errors -> exit codes.

Command groups live in their own modules (``images``, later ``containers``,
``networks``...) and only parse, call the engine and render.
"""

from __future__ import annotations

import click

from capsa import __version__
from capsa.cli import failure, output
from capsa.cli.app import App

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CapsaGroup(click.Group):
    """Turns capsa errors into one line on stderr and Docker's exit codes
    (``capsa.cli.failure``, which the listings' fast path shares)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            if ctx.invoked_subcommand in failure.RUN_LIKE:
                e.exit_code = 125  # type: ignore[misc]  # docker: a bad flag of run is 125
            raise
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:
            debug = isinstance(ctx.obj, App) and ctx.obj.debug
            ctx.exit(failure.report(e, ctx.invoked_subcommand or "", debug))


@click.group(cls=CapsaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="capsa")
@click.option("--root", envvar="CAPSA_ROOT", help="data root (default /var/lib/capsa)")
@click.option("--runroot", envvar="CAPSA_RUNROOT", help="run root (default /run/capsa)")
@click.option(
    "--config",
    "config_path",
    envvar="CAPSA_CONFIG",
    help="config file (default /etc/capsa/capsa.toml)",
)
@click.option(
    "-H",
    "--host",
    envvar="CAPSA_HOST",
    help="a capsa system service to use (unix://PATH) instead of the local engine",
)
@click.option("-D", "--debug", is_flag=True, help="show tracebacks")
@click.pass_context
def cli(
    ctx: click.Context,
    root: str | None,
    runroot: str | None,
    config_path: str | None,
    host: str | None,
    debug: bool,
) -> None:
    """capsa: a container engine."""
    ctx.obj = App(root, runroot, config_path, debug, host=host)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
def version() -> None:
    """Show the capsa version."""
    from capsa.oci.runtime_spec import OCI_VERSION

    click.echo(f"capsa version {__version__}")
    click.echo(f"OCI runtime spec {OCI_VERSION}")


def _register() -> None:
    from capsa.cli import (
        containers,
        explain,
        fscommands,
        images,
        monitoring,
        networks,
        system,
        volumes,
    )

    images.register(cli)
    volumes.register(cli)
    containers.register(cli)
    fscommands.register(cli)
    explain.register(cli)
    networks.register(cli)
    monitoring.register(cli)  # last: it adds to the `container` and `system` groups
    system.register(cli)  # after monitoring: it adds to the `system` group


_register()


# what the everyday commands import on first use (``ps``, ``run``, ``exec``, ``logs``,
# ``inspect``, ``stop``, ``rm``...): a warm host imports them once for all its commands
_WARM_MODULES = (
    "capsa.config",
    "capsa.cli.fastpath",
    "capsa.cli.list_containers",
    "capsa.cli.list_images",
    "capsa.cli.list_volumes",
    "capsa.cli.limitflags",
    "capsa.syntax.filters",
    "capsa.syntax.keyvalue",
    "capsa.syntax.mounts",
    "capsa.syntax.network",
    "capsa.syntax.policies",
    "capsa.api.wire_containers",
    "capsa.cli.attachio",
    "capsa.cli.errors",
    "capsa.cli.progress",
    "capsa.cli.template",
)


def warm() -> None:
    """Import what commands import lazily (``capsa.engine.monitor.warm``: in a monitor host,
    whose forked commands then start with it all imported)."""
    import importlib

    from capsa.engine.monitor.warm import preload

    for name in _WARM_MODULES:
        importlib.import_module(name)
    preload()


def main() -> None:
    output.setup_streams()
    try:
        cli.main(standalone_mode=True)
    except SystemExit as e:
        failure.exit_fast(e.code)
    failure.exit_fast(0)
