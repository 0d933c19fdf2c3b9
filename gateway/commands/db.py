"""`modgate db`: schema migrations; also the helpers the other data command groups share.

Every data group takes ``--database-url``; without it, the URL comes from the same settings as
``modgate serve`` (``--config`` / ``MODGATE_CONFIG`` file < ``MODGATE_DATABASE_URL`` < the flag;
gateway/commands/settings.py), so every command works on the database the server uses.
SQLAlchemy and Alembic are imported inside the commands so that ``modgate --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gateway.commands.settings import command_settings
from gateway.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

F = TypeVar("F", bound=Callable[..., Any])
_URL_FLAG_KEY = "modgate.database_url_flag"


def redact_url(url: str) -> str:
    """The URL without its password (SQLAlchemy imported here, not at module level: see above)."""
    from gateway.storage.engine import redact_url as redact

    return redact(url)


def database_url_option(func: F) -> F:
    """The ``--database-url`` option every data group carries."""
    return click.option(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"SQLAlchemy database URL [default: the configured one, else {Settings.database_url}].",
    )(func)


def store_database_url(ctx: click.Context, database_url: str | None) -> None:
    """Keeps the group's ``--database-url`` flag for its subcommands (it overrides file and env)."""
    if database_url is not None:
        ctx.meta[_URL_FLAG_KEY] = database_url


def database_url(ctx: click.Context) -> str:
    """The URL this command works on: the flag, else the settings (file < environment)."""
    return command_settings(ctx, database_url=ctx.meta.get(_URL_FLAG_KEY)).database_url


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn database and domain failures into one-line ClickExceptions (exit 1), never tracebacks."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    from gateway.errors import GatewayError

    try:
        yield
    except click.ClickException:
        raise
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    except (ArgumentError, NoSuchModuleError) as exc:
        raise click.UsageError(f"invalid database URL {redact_url(url)}: {exc}") from None
    except DBAPIError as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else exc.__class__.__name__
        raise click.ClickException(f"database error at {redact_url(url)}: {first_line}") from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database error at {redact_url(url)}: {exc.__class__.__name__}") from None
    except OSError as exc:  # e.g. the SQLite file's directory cannot be created
        raise click.ClickException(
            f"cannot open the database at {redact_url(url)}: {exc.strerror or exc}"
        ) from None


@contextmanager
def open_session(ctx: click.Context, *, require_schema: bool = True) -> Iterator[Session]:
    """A session in one transaction, committed on success; checks the schema is at head first."""
    from gateway.storage import make_engine, make_session_factory, migrate

    url = database_url(ctx)
    with database_errors(url):
        engine = make_engine(url)
        try:
            if require_schema and not migrate.is_up_to_date(url):
                raise click.ClickException(
                    f"the database at {redact_url(url)} is not at the latest schema revision; "
                    "run `modgate db upgrade` first"
                )
            with make_session_factory(engine)() as session, session.begin():
                yield session
        finally:
            engine.dispose()


def cli_actor() -> str:
    """Who an audit event from the command line is attributed to."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"cli:{user}"


@click.group(name="db")
@database_url_option
@click.pass_context
def db_group(ctx: click.Context, database_url: str | None) -> None:
    """Database schema: upgrade, downgrade, show the current revision."""
    store_database_url(ctx, database_url)


@db_group.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    from alembic.util import CommandError

    from gateway.storage import migrate

    url = database_url(ctx)
    with database_errors(url):
        try:
            migrate.upgrade(url, revision)
            now = migrate.current(url)
        except CommandError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"database at {redact_url(url)} is at revision {now or 'base'}")


@db_group.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the schema down to REVISION ("base" removes every table: all data is lost)."""
    from alembic.util import CommandError

    from gateway.storage import migrate

    url = database_url(ctx)
    with database_errors(url):
        try:
            migrate.downgrade(url, revision)
            now = migrate.current(url)
        except CommandError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"database at {redact_url(url)} is at revision {now or 'base'}")


@db_group.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Show the schema revision; exit 1 when it is not the newest."""
    from gateway.storage import migrate

    url = database_url(ctx)
    with database_errors(url):
        revision = migrate.current(url)
        head = migrate.head()
    if revision == head:
        click.echo(f"{revision} (head)")
        return
    click.echo(f"{revision or 'base (empty database)'}; newest is {head}: run `modgate db upgrade`")
    ctx.exit(1)
