"""The `ssec-transfer` command line: the top-level parser, dispatch and exit codes.

Exit codes: 0 success; 1 the transfer failed (network, server, not found, access denied);
2 rejected before any request (usage, key file, http endpoint, impossible part size);
3 key problem (wrong key, missing key, key for a plain object, bucket blocks SSE-C);
128 + the signal's number when a signal stopped it: 130 SIGINT, 143 SIGTERM, 129 SIGHUP
(`signals` holds the table).

Each command family (options, handlers) lives in its own module; this one puts them together.
Building the parser imports nothing heavy (no engine, aiobotocore, anyio or SQLite): each
handler imports what its command needs when it runs, so `--version` and `--help` are quick.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ssec_transfer import __version__
from ssec_transfer.cli import (
    admin_commands,
    completion_command,
    config_command,
    config_file,
    copy_commands,
    grant_commands,
    key_commands,
    ls_command,
    mv_command,
    presign_command,
    rm_command,
    sync_command,
    transfer_commands,
    watch_command,
)
from ssec_transfer.cli.options import (
    EPILOG,
    Handler,
    Parser,
    command_factory,
    typed_key_material,
)
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import SSECTransferError
from ssec_transfer.core.report import error_record, interrupted_record
from ssec_transfer.keys import redact
from ssec_transfer.keys.redact import redact_key_material


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ssec-transfer",
        description="Fast S3 uploads and downloads with server-side encryption under your "
        "own key (SSE-C).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v for info, -vv for debug logs"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = command_factory(sub)
    # In the order `ssec-transfer --help` lists them.
    transfer_commands.register(command)  # put, get, head
    presign_command.register(command)
    key_commands.register_keygen(command)
    copy_commands.register(command)  # cp, rotate
    sync_command.register(command)
    ls_command.register(command)
    rm_command.register(command)
    mv_command.register(command)
    grant_commands.register(command)  # grant, post
    watch_command.register(command)
    admin_commands.register(command)  # cleanup, doctor, server, bench, demo
    key_commands.register_ledger_and_keyring(sub, command)
    config_command.register(command)
    completion_command.register(command)
    return parser


HANDLERS: dict[str, Handler] = {
    **transfer_commands.HANDLERS,
    **presign_command.HANDLERS,
    **key_commands.HANDLERS,
    **copy_commands.HANDLERS,
    **ls_command.HANDLERS,
    **rm_command.HANDLERS,
    **sync_command.HANDLERS,
    **mv_command.HANDLERS,
    **grant_commands.HANDLERS,
    **watch_command.HANDLERS,
    **admin_commands.HANDLERS,
    **config_command.HANDLERS,
    **completion_command.HANDLERS,
}


def _run(handler: Handler, args: argparse.Namespace) -> int:
    """A sync handler has run when it returns; an async one runs in a child task of one
    event loop that a stop signal cancels (`signals.run_until_signal`)."""
    from ssec_transfer.cli import signals

    signals.install_for_sync_commands()
    outcome = handler(args)
    if isinstance(outcome, int):
        return outcome
    try:
        import anyio

        return anyio.run(signals.run_until_signal, lambda: outcome)
    finally:
        # A signal before the loop took over leaves the coroutine unstarted: close it, so
        # Python does not warn that it was never awaited.
        if inspect.iscoroutine(outcome):
            outcome.close()


def _interrupted(args: argparse.Namespace, signal_name: str, code: int) -> int:
    if getattr(args, "json", False):
        print_json(interrupted_record(args.command, signal_name, code))
    if getattr(args, "resume", False):
        print(f"ssec-transfer: interrupted by {signal_name}; finished parts are kept: run the "
              "same command again with --resume to continue", file=sys.stderr)  # fmt: skip
    else:
        print(f"ssec-transfer: interrupted by {signal_name}; nothing partial was kept",
              file=sys.stderr)  # fmt: skip
    return code


def _configure_logging(args: argparse.Namespace) -> None:
    """-v/-vv; --only-show-errors keeps warnings and errors, --quiet errors alone."""
    verbosity = args.verbose
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "quiet", False) or getattr(args, "only_show_errors", False):
        handler.setFormatter(logging.Formatter("ssec-transfer: %(levelname)s: %(message)s"))
        level = logging.ERROR if args.quiet else logging.WARNING
        logging.basicConfig(level=level, handlers=[handler], force=True)
        logging.getLogger("ssec_transfer").setLevel(level)
    elif verbosity >= 2:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler], force=True)
    else:
        handler.setFormatter(logging.Formatter("ssec-transfer: %(levelname)s: %(message)s"))
        level = logging.INFO if verbosity == 1 else logging.WARNING
        logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
        logging.getLogger("ssec_transfer").setLevel(level)


def _scrub(text: str, typed: list[str]) -> str:
    """The last line of defence before an error is printed: no loaded key, and nothing the
    user typed that looks like key material (`typed_key_material`), is echoed."""
    return redact_key_material(redact.redact(text), typed, scan=False)


def _scrubbed(error: dict[str, Any], typed: list[str]) -> dict[str, Any]:
    return {k: _scrub(v, typed) if isinstance(v, str) else v for k, v in error.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, from_config = config_file.parse_args(parser, argv)
    except SSECTransferError as exc:  # the config file is at fault, before any request
        print(f"ssec-transfer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    _configure_logging(args)
    if from_config:
        logging.getLogger("ssec_transfer").info("%s", from_config)
    from ssec_transfer.cli import signals  # anyio: only once a command runs

    try:
        return _run(HANDLERS[args.command], args)
    except SSECTransferError as exc:
        typed = typed_key_material(sys.argv[1:] if argv is None else argv)
        if getattr(args, "json", False):
            print_json(_scrubbed(error_record(args.command, exc), typed))
        print(f"ssec-transfer: error: {_scrub(str(exc), typed)}", file=sys.stderr)
        return exc.exit_code
    except signals.Interrupted as stop:
        return _interrupted(args, stop.name, stop.exit_code)
    except KeyboardInterrupt:
        return _interrupted(args, "SIGINT", signals.exit_code(signal.SIGINT))


def entry_point() -> NoReturn:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        code = 1
    if code and not sys.stdout.closed:
        # The reader of stdout may be gone (`get ... - | head`): flushing at exit would
        # raise again, so point stdout at /dev/null first (Python's documented recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    if code >= 128:
        # Stopped by a signal, cleanups done. A worker thread may still block in a read or
        # write nobody will finish (stdin held open, a pipe nobody reads); the interpreter
        # would wait for it at exit, so leave without waiting.
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
