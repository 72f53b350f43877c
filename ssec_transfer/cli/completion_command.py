"""`completion SHELL`: a tab-completion script generated from the parser itself by shtab, so
it lists every command and option the installed version has.

shtab writes static scripts: pressing TAB runs no Python, so completion stays instant
whatever the CLI costs to start. It is imported only by this command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssec_transfer.cli.options import CommandFactory, Handler

# The shells shtab writes scripts for that this tool runs under (shtab.SUPPORTED_SHELLS,
# less powershell), spelled here so registering the command does not import shtab.
SHELLS = ("bash", "zsh", "fish", "tcsh")
_FILE_METAVARS = frozenset({"PATH", "FILE", "PEM", "fileb://PATH", "SRC", "DEST"})
_DIR_METAVARS = frozenset({"DIR"})

INSTALL = """\
Install it once (open a new shell afterwards):

  bash:  mkdir -p ~/.local/share/bash-completion/completions
         ssec-transfer completion bash > ~/.local/share/bash-completion/completions/ssec-transfer
         (needs the bash-completion package; or `source <(ssec-transfer completion bash)`
         in ~/.bashrc)
  zsh:   mkdir -p ~/.zfunc && ssec-transfer completion zsh > ~/.zfunc/_ssec-transfer
         and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath); autoload -Uz compinit
         && compinit
  fish:  ssec-transfer completion fish > ~/.config/fish/completions/ssec-transfer.fish
  tcsh:  ssec-transfer completion tcsh > ~/.ssec-transfer.tcsh
         and in ~/.tcshrc: source ~/.ssec-transfer.tcsh

Commands and options complete; local paths complete where an option takes a file. s3:// URLs
do not (that would need a request per TAB). Regenerate the script after an upgrade."""


def register(command: CommandFactory) -> None:
    comp = command(
        "completion",
        "print a shell completion script (bash, zsh, fish, tcsh)",
        "Print the tab-completion script for SHELL on stdout.\n\n" + INSTALL,
    )
    comp.add_argument("shell", choices=SHELLS, metavar="SHELL", help=", ".join(SHELLS))


def script(shell: str) -> str:
    """The completion script for `shell`, from the full parser."""
    import shtab

    from ssec_transfer.cli.main import build_parser  # main registers this module

    parser = build_parser()
    _mark_paths(parser, shtab.FILE, shtab.DIRECTORY)
    return shtab.complete(parser, shell=shell)


def _mark_paths(parser: argparse.ArgumentParser, file: object, folder: object) -> None:
    """Let the shell complete local paths for the arguments that take one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub, file, folder)
        elif action.metavar in _DIR_METAVARS:
            action.complete = folder  # type: ignore[attr-defined]
        elif action.metavar in _FILE_METAVARS or action.type is Path:
            action.complete = file  # type: ignore[attr-defined]


def cmd_completion(args: argparse.Namespace) -> int:
    print(script(args.shell), end="")
    return 0


HANDLERS: dict[str, Handler] = {"completion": cmd_completion}
