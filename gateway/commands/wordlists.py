"""`modgate wordlist create / add / remove / allow / unallow / show / list / history / attach / detach`.

Word lists kept in the database (gateway/wordlists/), in the syntax of the shipped lists
(moderation/data/profanity_en.txt: one entry a line, `#` comments, `*` wildcards, phrases). Every change
is a new list version, audited with the operator as actor (`cli:USER`), and served by every replica
within `policy_refresh_s` wherever the list is attached. docs/moderation.md, "Word lists at runtime".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from gateway.commands.db import cli_actor, database_url_option, open_session, store_database_url

_OWNER = click.option(
    "--tenant", "owner", default="", help="The tenant owning the list (default: a global list)."
)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _lines(entries: Sequence[str], files: Sequence[str]) -> list[str]:
    """Entries from the arguments and from list files (one entry a line, `#` comments)."""
    out = list(entries)
    for file in files:
        try:
            out += Path(file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.UsageError(f"cannot read the list file {file}: {exc}") from None
    return out


def _row(info: Any) -> dict[str, Any]:
    snap = info.snapshot
    return {
        "id": snap.list_id,
        "name": snap.name,
        "tenant": snap.tenant or None,
        "version": snap.version,
        "latest_version": info.latest_version,
        "revision": info.revision,
        "created_by": info.created_by,
        "created_at": _iso(info.created_at),
        "words": list(snap.words),
        "allow": list(snap.allow),
        "attached": [
            {"kind": a.target_kind, "target": a.target, "revision": a.revision} for a in info.attachments
        ],
    }


def _label(info: Any) -> str:
    snap = info.snapshot
    owner = f" (tenant {snap.tenant})" if snap.tenant else " (global)"
    return f"{snap.name}{owner} v{snap.version}"


@click.group(name="wordlist")
@database_url_option
@click.pass_context
def wordlist_group(ctx: click.Context, database_url: str | None) -> None:
    """Word lists in the database: block and allow entries per list, attached to a policy (every tenant
    under it) or to a tenant, served by every replica without a restart."""
    store_database_url(ctx, database_url)


@wordlist_group.command(name="create")
@click.argument("name")
@_OWNER
@click.option(
    "--words-file", "words_files", multiple=True, type=click.Path(dir_okay=False), help="Block entries."
)
@click.option(
    "--allow-file", "allow_files", multiple=True, type=click.Path(dir_okay=False), help="Allow entries."
)
@click.pass_context
def create_command(
    ctx: click.Context, name: str, owner: str, words_files: tuple[str, ...], allow_files: tuple[str, ...]
) -> None:
    """Create list NAME (version 1), empty or from list files. It applies to nothing until attached."""
    from gateway.wordlists.store import create_list

    words, allow = _lines((), words_files), _lines((), allow_files)
    with open_session(ctx) as session:
        info = create_list(
            session=session, name=name, tenant=owner, words=words, allow=allow, actor=cli_actor()
        )
    snap = info.snapshot
    click.echo(f"created {_label(info)}: {len(snap.words)} block entries, {len(snap.allow)} allow entries")


def _change(ctx: click.Context, name: str, owner: str, **changes: list[str]) -> None:
    from gateway.wordlists.store import change_entries

    if not any(changes.values()):
        raise click.UsageError("give at least one entry (arguments or --file)")
    with open_session(ctx) as session:
        info = change_entries(session=session, name=name, tenant=owner, actor=cli_actor(), **changes)
    snap = info.snapshot
    click.echo(
        f"{_label(info)} from revision {info.revision}: {len(snap.words)} block entries, "
        f"{len(snap.allow)} allow entries"
    )


def _entry_command(command_name: str, field: str, help_text: str) -> click.Command:
    @click.command(name=command_name, help=help_text)
    @click.argument("name")
    @click.argument("entries", nargs=-1)
    @_OWNER
    @click.option(
        "--file", "files", multiple=True, type=click.Path(dir_okay=False), help="Entries from a list file."
    )
    @click.pass_context
    def command(
        ctx: click.Context, name: str, entries: tuple[str, ...], owner: str, files: tuple[str, ...]
    ) -> None:
        _change(ctx, name, owner, **{field: _lines(entries, files)})

    return command


for _name, _field, _help in (
    ("add", "add_words", "Add block ENTRIES to list NAME (a new version)."),
    ("remove", "remove_words", "Remove block ENTRIES from list NAME (each must be in it)."),
    ("allow", "add_allow", "Add allow ENTRIES (phrases exempted from every block entry, built-in ones too)."),
    ("unallow", "remove_allow", "Remove allow ENTRIES from list NAME."),
):
    wordlist_group.add_command(_entry_command(_name, _field, _help))


@wordlist_group.command(name="show")
@click.argument("name")
@_OWNER
@click.option("--version", "version", type=int, help="This version instead of the latest.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of the list-file format.")
@click.pass_context
def show_command(ctx: click.Context, name: str, owner: str, version: int | None, as_json: bool) -> None:
    """The entries of list NAME as a list file (block entries; allow entries under `# allow:`), and
    where it is attached."""
    from gateway.wordlists.store import get_list

    with open_session(ctx) as session:
        info = get_list(session=session, name=name, tenant=owner, version=version)
    if as_json:
        click.echo(json.dumps(_row(info)))
        return
    click.echo(
        f"# {_label(info)} (latest v{info.latest_version}; by {info.created_by}, {_iso(info.created_at)})"
    )
    for a in info.attachments:
        click.echo(f"# attached to {a.target_kind} {a.target} (revision {a.revision})")
    click.echo("# block:")
    for entry in info.snapshot.words:
        click.echo(entry)
    click.echo("# allow:")
    for entry in info.snapshot.allow:
        click.echo(f"# {entry}")


@wordlist_group.command(name="list")
@click.option("--tenant", "owner", default=None, help='Only this tenant\'s lists ("" for the global ones).')
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_command(ctx: click.Context, owner: str | None, as_json: bool) -> None:
    """Every list at its latest version, with its counts and attachments."""
    from gateway.wordlists.store import list_lists

    with open_session(ctx) as session:
        infos = list_lists(session=session, tenant=owner)
    for info in infos:
        if as_json:
            row = _row(info)
            click.echo(json.dumps({k: v for k, v in row.items() if k not in ("words", "allow")}))
            continue
        where = ", ".join(f"{a.target_kind} {a.target}" for a in info.attachments) or "not attached"
        click.echo(
            f"{_label(info)}: {len(info.snapshot.words)} block, {len(info.snapshot.allow)} allow; {where}"
        )
    if not infos:
        click.echo("no word lists", err=True)


@wordlist_group.command(name="history")
@click.argument("name")
@_OWNER
@click.pass_context
def history_command(ctx: click.Context, name: str, owner: str) -> None:
    """Every version of list NAME, oldest first: who made it, when, from which revision."""
    from gateway.wordlists.store import history

    with open_session(ctx) as session:
        infos = history(session=session, name=name, tenant=owner)
    for info in infos:
        click.echo(
            f"v{info.snapshot.version:<5} revision {info.revision:<6} {len(info.snapshot.words)} block, "
            f"{len(info.snapshot.allow)} allow; by {info.created_by} {_iso(info.created_at)}"
        )


def _target(policy: str | None, tenant: str | None) -> tuple[str, str]:
    if (policy is None) == (tenant is None):
        raise click.UsageError("give exactly one of --to-policy and --to-tenant")
    return ("policy", policy) if policy is not None else ("tenant", tenant or "")


def _attach_command(command_name: str, attached: bool) -> click.Command:
    verb = "Attach" if attached else "Detach"

    @click.command(
        name=command_name,
        help=f"{verb} list NAME {'to' if attached else 'from'} a policy (every tenant deciding under it; "
        "global lists only) or a tenant. Every replica applies it within `policy_refresh_s`.",
    )
    @click.argument("name")
    @_OWNER
    @click.option("--to-policy", "policy", default=None, help="The policy name.")
    @click.option("--to-tenant", "tenant", default=None, help="The tenant.")
    @click.pass_context
    def command(ctx: click.Context, name: str, owner: str, policy: str | None, tenant: str | None) -> None:
        from gateway.wordlists.store import attach, detach

        kind, target = _target(policy, tenant)
        with open_session(ctx) as session:
            change = attach if attached else detach
            revision = change(
                session=session, name=name, tenant=owner, target_kind=kind, target=target, actor=cli_actor()
            )
        click.echo(
            f"{name} {'attached to' if attached else 'detached from'} {kind} {target}, revision {revision}"
        )

    return command


wordlist_group.add_command(_attach_command("attach", True))
wordlist_group.add_command(_attach_command("detach", False))
