"""``krtc-rec dlq list|show|replay|purge``: the jobs that failed for good.

A dead letter keeps what is needed to understand and replay a job (task, session, arguments,
last error, attempts), never a secret. Replaying queues the same task again with a new task id;
the letter stays, with the replay noted, until it is purged.
"""

from __future__ import annotations

import sys

import click

from orchestrator.cli.output import (
    EXIT_NOT_FOUND,
    QUEUE_EXIT_CODES_HELP,
    echo_json,
    fail,
)
from orchestrator.cli.recorder import open_recorder
from orchestrator.cli.render import letter_json, render_letters
from orchestrator.errors import OrchestratorError

__all__ = ["dlq", "DEFAULT_DLQ_LIMIT"]

#: Letters ``dlq list`` prints unless ``--limit`` says otherwise.
DEFAULT_DLQ_LIMIT = 100


def _not_found(letter_id: str) -> None:
    click.echo(f"error: no dead letter {letter_id!r} (never kept, or purged)", err=True)


@click.group(epilog=QUEUE_EXIT_CODES_HELP)
def dlq() -> None:
    """Dead letters: jobs that failed permanently or spent their attempts."""


@dlq.command("list", epilog=QUEUE_EXIT_CODES_HELP)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_DLQ_LIMIT,
    show_default=True,
    help="At most this many letters.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of letters.")
def list_letters(limit: int, as_json: bool) -> None:
    """List the dead letters, newest first."""
    recorder = open_recorder()
    try:
        letters = recorder.dead_letters.list(limit=limit)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json([letter_json(x) for x in letters])
    elif letters:
        click.echo(render_letters(letters))
    else:
        click.echo("no dead letters", err=True)


@dlq.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("letter_id", metavar="ID")
def show(letter_id: str) -> None:
    """Print dead letter ID as JSON."""
    recorder = open_recorder()
    try:
        letter = recorder.dead_letters.get(letter_id)
    except OrchestratorError as exc:
        fail(exc)
    if letter is None:
        _not_found(letter_id)
        sys.exit(EXIT_NOT_FOUND)
    echo_json(letter_json(letter))


@dlq.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help='Print {"letter", "task", "task_id"}.')
def replay(letter_id: str, as_json: bool) -> None:
    """Queue the job of dead letter ID again; print the new task id.

    The job runs as it would have: a start for a session that has already failed, or a stop for
    one that has already stopped, does nothing. The letter stays (with the replay noted) until
    purged.
    """
    recorder = open_recorder()
    try:
        letter = recorder.dead_letters.get(letter_id)
        if letter is None:
            _not_found(letter_id)
            sys.exit(EXIT_NOT_FOUND)
        task_id = recorder.replay(letter_id)
    except KeyError:  # purged between the two reads
        _not_found(letter_id)
        sys.exit(EXIT_NOT_FOUND)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json(
            {
                "letter": letter_id,
                "task": letter.task,
                "session_id": letter.session_id,
                "task_id": task_id,
            }
        )
        return
    click.echo(
        f"replayed {letter.task} for session {letter.session_id} as task {task_id}", err=True
    )
    click.echo(task_id)


@dlq.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("letter_ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "purge_all", is_flag=True, help="Delete every dead letter.")
@click.option(
    "--older-than",
    "older_than_s",
    type=click.FloatRange(min=0),
    help="Delete the letters that failed more than this many seconds ago.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --all.")
@click.option("--json", "as_json", is_flag=True, help='Print {"purged", "missing"}.')
def purge(
    letter_ids: tuple[str, ...],
    purge_all: bool,
    older_than_s: float | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete dead letters: the IDs given, --all, or those --older-than S seconds.

    Prints how many were deleted. --all asks first unless --yes (a declined prompt exits 1 and
    deletes nothing). An ID that is not kept is reported and exits 4 (the others are still
    deleted).
    """
    chosen = sum([bool(letter_ids), purge_all, older_than_s is not None])
    if chosen != 1:
        raise click.UsageError("give exactly one of --all, --older-than S or IDs")
    recorder = open_recorder()
    if purge_all and not yes:
        try:
            size = recorder.dead_letters.size()
        except OrchestratorError as exc:
            fail(exc)
        if not click.confirm(f"delete all {size} dead letters?", default=False, err=True):
            click.echo("nothing deleted", err=True)
            sys.exit(1)
    missing = []
    try:
        if letter_ids:
            deleted = 0
            for letter_id in letter_ids:
                if recorder.dead_letters.remove(letter_id):
                    deleted += 1
                else:
                    missing.append(letter_id)
        else:
            deleted = recorder.dead_letters.purge(older_than_s=older_than_s)
    except OrchestratorError as exc:
        fail(exc)
    for letter_id in missing:
        _not_found(letter_id)
    if as_json:
        echo_json({"purged": deleted, "missing": missing})
    else:
        click.echo(f"purged {deleted} dead letter{'' if deleted == 1 else 's'}")
    sys.exit(EXIT_NOT_FOUND if missing else 0)
