"""`ssec-transfer completion SHELL`: scripts that the shells accept, that name every command,
and that complete what a user types (bash run for real with COMP_WORDS)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import shtab

from ssec_transfer.cli import completion_command
from ssec_transfer.cli.config_file import subcommands
from ssec_transfer.cli.main import build_parser, main

COMMANDS = list(subcommands(build_parser()))


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def test_the_shells_offered_are_ones_shtab_writes() -> None:
    assert set(completion_command.SHELLS) <= set(shtab.SUPPORTED_SHELLS)
    assert {"bash", "zsh", "fish"} <= set(completion_command.SHELLS)


def test_bash_script_is_valid_and_names_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = script("bash", capsys)
    path = tmp_path / "ssec-transfer.bash"
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    assert "complete -o bashdefault -F _shtab_ssec_transfer ssec-transfer" in text
    for name in COMMANDS:
        assert name in text
    assert "--sse-c-key" not in text  # hidden options stay hidden


def _complete(script_path: Path, *words: str) -> list[str]:
    """What bash offers for `ssec-transfer WORDS...` with the cursor after the last word."""
    program = f"""
source {script_path}
COMP_WORDS=(ssec-transfer {" ".join(repr(w) for w in words)})
COMP_CWORD={len(words)}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_shtab_ssec_transfer
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.split()


def test_bash_completes_commands_options_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ssec-transfer.bash"
    path.write_text(script("bash", capsys))
    assert _complete(path, "co") == ["config", "completion"]
    assert set(_complete(path, "")) >= {"put", "get", "ls", "config", "completion"}
    assert _complete(path, "put", "--key-") == ["--key-file", "--key-env"]
    assert _complete(path, "put", "--checksum", "crc") == ["crc32c", "crc32"]
    assert _complete(path, "completion", "") == list(completion_command.SHELLS)
    assert _complete(path, "config", "") == ["path", "show"]
    (tmp_path / "sse-c.key").write_bytes(b"k")
    # --key-file completes local paths
    assert str(tmp_path / "sse-c.key") in _complete(path, "put", "--key-file", f"{tmp_path}/sse")


def test_zsh_script_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = script("zsh", capsys)
    assert text.startswith("#compdef ssec-transfer")
    for name in COMMANDS:
        assert name in text
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed: content checked only")
    path = tmp_path / "_ssec-transfer"
    path.write_text(text)
    subprocess.run(["zsh", "-n", str(path)], check=True, timeout=30)


def test_fish_and_tcsh_scripts_name_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    fish = script("fish", capsys)
    assert "complete -c ssec-transfer" in fish
    tcsh = script("tcsh", capsys)
    assert "complete ssec-transfer" in tcsh
    for name in ("put", "get", "config", "completion"):
        assert name in fish
        assert name in tcsh


def test_help_says_how_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["completion", "--help"])
    out = capsys.readouterr().out
    assert "~/.local/share/bash-completion/completions/ssec-transfer" in out
    assert "~/.zfunc/_ssec-transfer" in out
    assert "~/.config/fish/completions/ssec-transfer.fish" in out


def test_an_unknown_shell_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["completion", "powershell"])
    assert stop.value.code == 2
    assert "invalid choice: 'powershell'" in capsys.readouterr().err
