"""The ``batchlens`` command: ``demo``, ``run``, ``events``, ``dashboards`` and ``poll``.

Only the standard library is imported at start-up; each command imports what it needs. The commands live in
``_cli_demo`` and ``_cli_run`` (with ``_cli_batch``, ``_cli_handler`` and ``_cli_traces`` shared with ``poll``);
this module holds the parser, ``events``, ``dashboards`` and :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from batchlens._cli_batch import DEFAULT_FIXED_TIME_MS, EVENT_KINDS, PROCESSORS, make_event
from batchlens._cli_common import EXIT_BAD_INPUT, EXIT_OK, BadInput
from batchlens._cli_traces import add_traces_flag

__all__ = ["main"]


# -- events ----------------------------------------------------------------------------------------------------------
def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    """Write a sample event to stdout."""
    if args.count < 1:
        raise BadInput("--count must be at least 1")
    if not 0.0 <= args.fail_rate <= 1.0:
        raise BadInput("--fail-rate must be between 0 and 1")
    if args.groups < 1:
        raise BadInput("--groups must be at least 1")
    if args.fixed_time is not None and args.fixed_time < 0:
        raise BadInput("--fixed-time must not be negative")
    timestamp_ms = None if args.fixed_time is None else args.fixed_time
    event = make_event(args.kind, args.count, args.fail_rate, args.seed, groups=args.groups, timestamp_ms=timestamp_ms)
    json.dump(event, out, indent=2)
    out.write("\n")
    return EXIT_OK


# -- dashboards ------------------------------------------------------------------------------------------------------
def dashboards_dir() -> Path:
    """Where the bundled dashboards are: inside the installed package, or the source tree's dashboards/."""
    packaged = Path(__file__).resolve().parent / "_dashboards"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "dashboards"
    if source_tree.is_dir():
        return source_tree
    raise BadInput("no bundled dashboards found in this installation")


def cmd_dashboards(args: argparse.Namespace, out: TextIO) -> int:
    """List or export the bundled dashboards (Grafana files as they are, CloudWatch rendered for NS and region)."""
    import os

    from batchlens import _dashboard_export

    folder = dashboards_dir()
    if args.action == "list":
        for name, title in _dashboard_export.listing(folder):
            print(f"{name}\t{title}", file=out)
        return EXIT_OK
    target = Path(args.directory)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        namespace = args.namespace
        if namespace is None:
            namespace = os.environ.get("BATCHLENS_EMF_NAMESPACE") or _dashboard_export.DEFAULT_NAMESPACE
        written = _dashboard_export.export(folder, target, args.format, namespace, region)
    except ValueError as problem:
        raise BadInput(str(problem)) from problem
    except OSError as exc:
        raise BadInput(f"cannot write to {str(target)!r}: {exc.strerror or exc}") from exc
    for path in written:
        print(str(path), file=out)
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------------------------------
def _version() -> str:
    from batchlens import __version__

    return f"batchlens {__version__}"


class _VersionAction(argparse.Action):
    """``--version``: the package version, imported only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="print the batchlens version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(_version())
        parser.exit()


def _fixed_time(text: str) -> int:
    return DEFAULT_FIXED_TIME_MS if text == "" else int(text)


def _add_run_parser(sub: Any) -> None:
    from batchlens._cli_handler import add_handler_flags
    from batchlens._cli_run import DEFAULT_TIMEOUT_S, cmd_run

    run = sub.add_parser(
        "run",
        help="run your record handler or Lambda handler on an event file, like Lambda would",
        description=(
            "Run HANDLER on an event file. A function whose first two positional parameters are named event and "
            "context is called as a Lambda handler; any other (record, or record and lambda_context) is run as a "
            "record handler by a batchlens processor. --lambda-handler / --record-handler say which."
        ),
    )
    run.add_argument("event", help="path of the event JSON file ('-' for stdin)")
    add_handler_flags(run)
    run.add_argument(
        "--processor",
        choices=PROCESSORS,
        help="processor kind (default: sync, or async for an async def handler; the fifo kinds for FIFO queues)",
    )
    run.add_argument(
        "--event-type",
        choices=EVENT_KINDS,
        help="event source (default: detected from eventSource); an event from another source is refused",
    )
    budget = run.add_mutually_exclusive_group()
    budget.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"the function timeout: the context's remaining time starts there (default {DEFAULT_TIMEOUT_S:g})",
    )
    budget.add_argument(
        "--remaining-time", type=int, metavar="MS", help="the context's remaining time at the start, in milliseconds"
    )
    run.add_argument("--function-name", help="the context's function_name (default batch-handler)")
    run.add_argument(
        "--function-arn", help="the context's invoked_function_arn (sets the function name, region and account too)"
    )
    add_traces_flag(run, None, "stderr")
    run.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``batchlens`` command."""
    from batchlens._cli_demo import cmd_demo

    parser = argparse.ArgumentParser(
        prog="batchlens",
        description="Partial-failure batch processing for AWS Lambda with telemetry built in.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="process a generated batch with full telemetry and show the result")
    demo.add_argument("--records", type=int, default=20, help="records in the batch (default 20)")
    demo.add_argument("--fail-rate", type=float, default=0.2, help="share of records that fail (default 0.2)")
    demo.add_argument("--event-type", choices=EVENT_KINDS, default="sqs", help="event source (default sqs)")
    demo.add_argument(
        "--seed", type=int, default=7, help="random seed: the same ids and failing records every run (default 7)"
    )
    add_traces_flag(demo, "tree", "stdout")
    demo.set_defaults(func=cmd_demo)

    _add_run_parser(sub)

    events = sub.add_parser(
        "events",
        help="write a valid sample event JSON to stdout",
        description=(
            "Write a sample event whose payloads fit examples/getting_started_* (order_id, item, quantity, ...) "
            "and whose records carry producer trace headers. Timestamps are the current time unless --fixed-time."
        ),
    )
    events.add_argument("kind", choices=EVENT_KINDS, help="event source")
    events.add_argument("--count", type=int, default=10, help="records (default 10)")
    events.add_argument(
        "--fail-rate", type=float, default=0.0, help="share of records containing 'fail' (default 0.0: none)"
    )
    events.add_argument("--groups", type=int, default=1, help="FIFO message groups (default 1)")
    events.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed: the same ids, payloads, failing records and trace headers (timestamps: --fixed-time)",
    )
    events.add_argument(
        "--fixed-time",
        type=_fixed_time,
        nargs="?",
        const="",
        default=None,
        metavar="EPOCH_MS",
        help=f"timestamps from this instant instead of now (alone: {DEFAULT_FIXED_TIME_MS}); with --seed, "
        "the same output byte for byte",
    )
    events.set_defaults(func=cmd_events)

    dashboards = sub.add_parser("dashboards", help="list or export the bundled Grafana and CloudWatch dashboards")
    dash_sub = dashboards.add_subparsers(dest="action", metavar="ACTION")
    dash_sub.required = True
    dash_sub.add_parser("list", help="list the bundled dashboards").set_defaults(func=cmd_dashboards)
    export = dash_sub.add_parser("export", help="write the dashboards' JSON files into DIR")
    export.add_argument("directory", metavar="DIR")
    export.add_argument(
        "--format",
        choices=("grafana", "cloudwatch"),
        default="grafana",
        help="grafana (default): the Grafana JSON as is; cloudwatch: the CloudWatch body for NAMESPACE and REGION",
    )
    export.add_argument("--namespace", help="CloudWatch metric namespace (default: BATCHLENS_EMF_NAMESPACE, batchlens)")
    export.add_argument("--region", help="CloudWatch dashboard region (default: AWS_REGION, AWS_DEFAULT_REGION)")
    export.set_defaults(func=cmd_dashboards)

    from batchlens._poll._args import add_parser as add_poll_parser  # standard library only

    add_poll_parser(sub).set_defaults(func=cmd_poll)
    return parser


def cmd_poll(args: argparse.Namespace, out: TextIO) -> int:
    """Run a Lambda handler against a real queue or stream (batchlens/_poll)."""
    from batchlens._poll._runner import cmd_poll as run_poll

    return run_poll(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchlens`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, sys.stdout))
    except BadInput as problem:
        message = " ".join(str(problem).split())
        print(f"batchlens: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (e.g. `batchlens events sqs | head`): not an error; keep Python from
        # complaining again when it flushes stdout at exit
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
