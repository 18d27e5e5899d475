"""`propensity`: one command per pipeline stage, and the one handler every failure goes through."""

from __future__ import annotations

import sys
import traceback

import click
import typer

from jobs.commands import analysis, data, models, pipeline
from jobs.commands.common import say
from models_py.config import settings
from models_py.errors import EXIT_FAILED, EXIT_OK, PropensityError, explain_environment_failure
from models_py.ops.alert import run_failure_hook

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Nightly purchase-propensity scoring.",
)
for group in (data.app, pipeline.app, models.app, analysis.app):
    app.add_typer(group)


@app.callback()
def _check_settings() -> None:
    """A mistyped PROPENSITY_* variable stops every command up front with its name, before anything is touched."""
    settings()


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure ends here with one line, its exit code and the operator's failure hook."""
    try:
        code = typer.main.get_command(app).main(args=argv, prog_name="propensity", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: unknown option, bad value
        exc.show()
        return exc.exit_code
    except PropensityError as exc:
        return _failed(str(exc), exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _failed("interrupted", EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - a bug, unless the machine ran out of disk or memory
        plain = explain_environment_failure(exc)
        if plain is not None:
            return _failed(str(plain), plain.exit_code)
        traceback.print_exc()
        return _failed(f"unexpected error (a bug, please report it with the traceback above): {exc!r}", EXIT_FAILED)


def _failed(message: str, exit_code: int) -> int:
    say(f"error: {message}")
    say("the published scores were not changed.")
    run_failure_hook(message, exit_code, say)
    return exit_code


def run() -> None:
    sys.exit(main())
