"""The ``capsa`` command: global options, the engine, errors -> exit codes.

Command groups live in their own modules (``images``, later ``containers``,
``networks``...) and only parse, call the engine and render.
"""

from __future__ import annotations

import os
import sys

import click

from capsa import __version__
from capsa.cli.app import App
from capsa.errors import CapsaError
from capsa.linux.fastexit import exit_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


class CapsaGroup(click.Group):
    """Turns capsa errors into one line on stderr and Docker's exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            if ctx.invoked_subcommand in ("run", "create", "exec", "start"):
                e.exit_code = 125  # type: ignore[misc]  # docker: a bad flag of run is 125
            raise
        except CapsaError as e:
            self._fail(ctx, e)
        except UnicodeEncodeError as e:
            from capsa.errors import not_utf8

            self._fail(ctx, not_utf8(e))
        except BrokenPipeError:
            die_of_sigpipe()
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.exceptions.Abort):
            raise
        except OSError as e:  # a kernel refusal nobody translated: one line, no traceback
            app = ctx.obj if isinstance(ctx.obj, App) else None
            if app is not None and app.debug:
                import traceback

                traceback.print_exc()
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"Error: {(e.strerror or str(e)).lower()}{where}", err=True)
            ctx.exit(125)
        except Exception as e:  # a bug: say what, point at --debug, no traceback
            app = ctx.obj if isinstance(ctx.obj, App) else None
            if app is not None and app.debug:
                import traceback

                traceback.print_exc()
            click.echo(
                f"Error: internal error: {type(e).__name__}: {e} (run with --debug for details)",
                err=True,
            )
            ctx.exit(125)

    def _fail(self, ctx: click.Context, e: CapsaError) -> None:
        from capsa.cli.errors import exit_code

        sub = ctx.invoked_subcommand or ""
        app = ctx.obj if isinstance(ctx.obj, App) else None
        if app is not None and app.debug:
            import traceback

            traceback.print_exc()
        click.echo(f"Error: {e}", err=True)
        ctx.exit(exit_code(e, run_like=sub in ("run", "create", "exec", "start")))


def die_of_sigpipe() -> NoReturn:
    """Output to a closed pipe (``logs -f | head``): die of SIGPIPE, quietly, as Docker's
    CLI does (141 in a shell). Python ignores SIGPIPE, so the write raised instead; a
    warm start's ``capsa`` process dies of the same signal (``capsa.cli.entry``)."""
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)  # not reached


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
@click.option("-D", "--debug", is_flag=True, help="show tracebacks")
@click.pass_context
def cli(
    ctx: click.Context, root: str | None, runroot: str | None, config_path: str | None, debug: bool
) -> None:
    """capsa: a container engine."""
    ctx.obj = App(root, runroot, config_path, debug)
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
    "capsa.api.wire_containers",
    "capsa.cli.attachio",
    "capsa.cli.errors",
    "capsa.cli.progress",
    "capsa.cli.template",
    "capsa.engine.local",
    "capsa.engine.containers",
    "capsa.engine.execs",
    "capsa.engine.filters",
    "capsa.engine.log_reader",
    "capsa.engine.logs",
    "capsa.engine.removal",
    "capsa.engine.specgen",
    "capsa.engine.stats",
    "capsa.engine.netwire",
    "capsa.engine.network.service",
    "capsa.runtime.container",
    "capsa.runtime.exec",
)


def warm() -> None:
    """Import what commands import lazily (``capsa.engine.warm``: in a monitor host,
    whose forked commands then start with it all imported)."""
    import importlib

    for name in _WARM_MODULES:
        importlib.import_module(name)


def main() -> None:
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):
        # a name or label that is not UTF-8 prints as the bytes it was (as Docker's CLI
        # writes them), whatever the locale's strictness
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        cli.main(standalone_mode=True)
    except SystemExit as e:
        exit_fast(e.code)
    exit_fast(0)


def exit_fast(code: object) -> None:
    """Exit without the interpreter's teardown (collecting every module: ~8 ms, which a
    command as short as ``ps`` notices). Every command has closed what it opened by now;
    only the standard streams need a flush."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    try:
        sys.stdout.flush()  # what is left of the output: a closed pipe kills, as a write does
    except BrokenPipeError:
        die_of_sigpipe()
    except (OSError, ValueError):
        pass
    exit_now(status)
