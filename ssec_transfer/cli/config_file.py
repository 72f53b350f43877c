"""Defaults from a TOML config file, applied under the command line.

The file is `$SSEC_TRANSFER_CONFIG`, else `$XDG_CONFIG_HOME/ssec-transfer/config.toml`
(`~/.config/...`); a missing file gives no defaults. Its keys are the long options of the
commands, spelled with `_` (`endpoint_url`, `key_file`, `part_size`...). Keys at the top level
apply to every command that has the option; a table named after a command (`[put]`, `[get]`,
`[ledger]`...) overrides them for that command. The command line always wins.

Values go through the option's own argparse converter, so "16MiB" works and a bad value is
refused the way the flag would be, naming the file and the key. Relative paths resolve against
the config file's folder. Only settings that hold across runs may be set (endpoint,
credentials profile, key file, tuning, ledger...); what one run does (paths, --recursive,
--force, --dryrun, filters, versions) is never taken from a file.

The file is read only once a command is known and no `--help` is asked for, and only for a
command that takes one of these options: `--version`, `--help`, `keygen` and the `config`
command itself never read it (`config show` reads it on purpose, to explain it). Nothing
heavier than `tomllib` is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ssec_transfer.core.errors import UsageError
from ssec_transfer.keys.redact import key_form, key_tokens

ENV_VAR = "SSEC_TRANSFER_CONFIG"

# The keys a config file may set: the `dest` of a long option, grouped as in `cli.options`.
KEYS: tuple[str, ...] = (
    # add_connection
    "endpoint_url",
    "profile",
    "region",
    "ca_bundle",
    "retry_mode",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "request_timeout",
    # add_key, and the keyring options
    "key_file",
    "key_env",
    "keyring",
    "keyring_file",
    "keyring_max_tries",
    # add_tuning
    "concurrency",
    "part_size",
    "multipart_threshold",
    "max_memory",
    "checksum",
    "bwlimit",
    # add_bulk (and the ledger/keyring commands' --ledger)
    "max_files",
    "ledger",
    "no_ledger",
    "follow_symlinks",
    "dask",
    "dask_local",
    "dask_batch_size",
    # the object options of uploads
    "storage_class",
    # add_output, add_via
    "progress",
    "via",
)
# Paths: `~` expands and a relative path is taken from the config file's folder.
PATH_KEYS = frozenset({"key_file", "ca_bundle", "ledger", "keyring_file"})
# The key of the run and the keyring are alternatives beyond argparse's mutually exclusive
# groups: `--keyring` on the command line sets the file's key_file aside, and the reverse.
_KEY_CHOICE = frozenset({"key_file", "key_env", "sse_c_key"})
_KEYRING_CHOICE = frozenset({"keyring", "keyring_file"})
# Where a key never applies: a key stored in the keyring must be named on the command line,
# and `ledger show --endpoint-url` is a filter, not where to connect.
_NEVER: dict[str, frozenset[str]] = {
    "keyring add": frozenset({"key_file", "key_env"}),
    "ledger show": frozenset({"endpoint_url"}),
}
# Commands the file never configures: a benchmark or demo measures the tool as documented
# (the file's endpoint would point `bench` at a real server instead of the embedded one).
_UNCONFIGURED = frozenset({"bench", "demo", "server"})
# The string values that are never repeated in an error (they name keys).
_SECRET_NAMING = frozenset({"key_file", "key_env"})

TOP = "top level"
NOT_SHOWN = "(value not repeated)"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the config file is looked for (it may not exist)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser()
    base = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and is ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "ssec-transfer" / "config.toml"


# Plain classes, not dataclasses: every command line imports this module, and building a
# dataclass costs more than the rest of it.
class Setting(NamedTuple):
    """One default a command gets from the file: the converted value and where it was set."""

    key: str
    value: Any
    origin: str  # TOP or "[put]"


class ConfigFile:
    """The parsed file: its top-level keys and its tables, unchecked values."""

    def __init__(self, path: Path, top: dict[str, Any], tables: dict[str, dict[str, Any]]) -> None:
        self.path, self.top, self.tables = path, top, tables

    def error(self, message: str, hint: str) -> UsageError:
        return UsageError(f"config file {self.path}: {message}", hint=hint)


def read_config(path: Path | None = None) -> ConfigFile | None:
    """The parsed file, or None when there is none (an error when SSEC_TRANSFER_CONFIG names
    it). Unknown keys are refused here, whatever the command; values, per command, later."""
    explicit = path is not None or bool(os.environ.get(ENV_VAR))
    path = path or config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise UsageError(
                f"config file {path} (from {ENV_VAR}) does not exist",
                hint=f"create it, or unset {ENV_VAR} to use "
                "$XDG_CONFIG_HOME/ssec-transfer/config.toml",
            ) from None
        return None
    except OSError as exc:
        raise UsageError(
            f"cannot read config file {path}: {exc.strerror}",
            hint=f"fix its permissions, or set {ENV_VAR}=/dev/null to run without it",
        ) from None
    import tomllib

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {exc.start})",
            hint="save it as UTF-8",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        hint = "fix the line it names"
        if "overwrite" in str(exc) or "declare" in str(exc):
            # `ledger = ...` and `[ledger]`, `keyring = true` and `[keyring]`.
            hint += ": a top-level key and a table cannot share a name, and a table is given once"
        else:
            hint += ' (strings need quotes: endpoint_url = "https://s3.example.com")'
        raise UsageError(
            f"config file {path} is not valid TOML: {exc}",
            hint=f"{hint}; or set {ENV_VAR}=/dev/null to run without it",
        ) from None
    config = ConfigFile(path, {}, {})
    for name, value in doc.items():
        if isinstance(value, dict):
            config.tables[name] = value
            for key in value:
                _check_known(config, key, f"[{name}]")
        else:
            _check_known(config, name, TOP)
            config.top[name] = value
    return config


def _check_known(config: ConfigFile, key: str, origin: str) -> None:
    if key in KEYS:
        return
    near = [k for k in KEYS if k.replace("_", "") == key.replace("-", "").replace("_", "")]
    hint = f"did you mean {near[0]}? " if near else ""
    raise config.error(
        f"unknown key {_shown('', key) if key_form(key) or key_tokens(key) else repr(key)} "
        f"({origin})",
        hint=hint + "keys are long options spelled with _, one of: " + ", ".join(KEYS),
    )


# -- which parsers a command's defaults go to -------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subparsers of `parser` by name ({} for a parser without)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaves(command: str, parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers that take a command's options: itself, or its actions (`ledger show`...)."""
    nested = subcommands(parser)
    if not nested:
        return {command: parser}
    return {f"{command} {name}": sub for name, sub in nested.items()}


def _options(name: str, leaf: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    if name.split()[0] in _UNCONFIGURED:
        return {}
    never = _NEVER.get(name, frozenset())
    return {
        a.dest: a
        for a in leaf._actions
        if a.option_strings and a.dest in KEYS and a.dest not in never
    }


def _exclusive(leaf: argparse.ArgumentParser, dest: str) -> set[str]:
    """The options argparse refuses together with `dest` (--key-file / --key-env...)."""
    peers: set[str] = set()
    for group in leaf._mutually_exclusive_groups:
        dests = {a.dest for a in group._group_actions}
        if dest in dests:
            peers |= dests - {dest}
    return peers


def _alternatives(leaf: argparse.ArgumentParser, dest: str) -> set[str]:
    """What, set closer to the run (a command's table, the command line), sets `dest` aside."""
    peers = _exclusive(leaf, dest)
    if dest in _KEY_CHOICE:
        peers |= _KEYRING_CHOICE
    elif dest in _KEYRING_CHOICE:
        peers |= _KEY_CHOICE
    return peers


# -- values -------------------------------------------------------------------------------------


def _shown(key: str, value: object) -> str:
    """A value for an error message: never one that names a key or looks like one."""
    text = str(value)
    if key in _SECRET_NAMING or key_form(text) is not None or key_tokens(text):
        return NOT_SHOWN
    return repr(value)


def _convert(
    config: ConfigFile, action: argparse.Action, key: str, raw: object, origin: str
) -> Any:
    """The value as the command line would have given it, or a UsageError naming the key."""
    where = f"{key} = {_shown(key, raw)} ({origin})"
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:  # a switch: --keyring, --no-ledger, --progress/--no-progress
        if not isinstance(raw, bool):
            raise config.error(
                f"{where} must be true or false", hint=f"write {key} = true (like {flag})"
            )
        return raw
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise config.error(
            f"{where} must be a string or a number, as {flag} takes",
            hint=f'write {key} = "{action.metavar or "VALUE"}"',
        )
    text = str(raw)
    if key in PATH_KEYS:
        given = Path(text).expanduser()
        text = os.fspath(given if given.is_absolute() else config.path.parent / given)
    value: Any = text
    if action.type is not None and callable(action.type):
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else "invalid value"
            problem = (
                problem.replace(text, "(value not repeated)") if NOT_SHOWN in where else problem
            )
            raise config.error(
                f"{where}: {problem}",
                hint=f"give what {flag} takes ({action.metavar or 'see --help'})",
            ) from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise config.error(f"{where}: choose from {choices}", hint=f"as for {flag}")
    return value


def _layer(
    config: ConfigFile,
    name: str,
    leaf: argparse.ArgumentParser,
    keys: Mapping[str, Any],
    origin: str,
) -> dict[str, Setting]:
    """The settings of one table that `leaf` takes, converted; alternatives in one table are
    refused as argparse would refuse both flags."""
    options = _options(name, leaf)
    found = {k: v for k, v in keys.items() if k in options}
    for key in found:
        clash = sorted(_exclusive(leaf, key) & set(found))
        if clash:
            raise config.error(
                f"{key} and {clash[0]} are both set ({origin}), but {name} takes only one",
                hint=f"keep one of them, or move one to a [{name.split()[0]}] table",
            )
    return {
        k: Setting(k, _convert(config, options[k], k, v, origin), origin) for k, v in found.items()
    }


def settings_for(
    config: ConfigFile, command: str, parser: argparse.ArgumentParser
) -> dict[str, dict[str, Setting]]:
    """{leaf name: {key: Setting}} for `command`: the top level, then its own table over it."""
    table = config.tables.get(command, {})
    all_leaves = leaves(command, parser)
    taken = set().union(*(_options(n, p) for n, p in all_leaves.items()))
    for key in table:
        if key not in taken:
            options = sorted(taken)
            raise config.error(
                f"{key} ({f'[{command}]'}): {command} has no such option",
                hint=f"move it to the top level or another command's table; {command} takes "
                + (", ".join(options) if options else "no key from a config file"),
            )
    result: dict[str, dict[str, Setting]] = {}
    for name, leaf in all_leaves.items():
        merged = _layer(config, name, leaf, config.top, TOP)
        for key, setting in _layer(config, name, leaf, table, f"[{command}]").items():
            for other in _alternatives(leaf, key):
                merged.pop(other, None)
            merged[key] = setting
        if merged:
            result[name] = merged
    return result


def check_tables(config: ConfigFile, commands: Sequence[str]) -> None:
    for name in config.tables:
        if name not in commands:
            raise config.error(
                f"[{name}] is not a command",
                hint="tables are named after commands: " + ", ".join(f"[{c}]" for c in commands),
            )


# -- applying them to a parse -------------------------------------------------------------------


def _command_position(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int | None:
    """Where the command name is in argv, when only -v/--verbose precede it; None otherwise
    (--version, --help, an error: argparse handles those, without the file)."""
    commands = subcommands(parser)
    for i, arg in enumerate(argv):
        if arg in commands:
            return i
        is_verbose = arg.startswith("-") and set(arg[1:]) == {"v"}
        if not (is_verbose or (len(arg) > 5 and "--verbose".startswith(arg))):
            return None
    return None


def _given_options(parsers: Iterator[argparse.ArgumentParser], argv: Sequence[str]) -> set[str]:
    """The dests of the long options typed in argv (abbreviations included, as argparse
    takes them)."""
    strings: dict[str, str] = {}
    for p in parsers:
        for action in p._actions:
            strings.update({s: action.dest for s in action.option_strings if s.startswith("--")})
    given: set[str] = set()
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        if name in strings:
            given.add(strings[name])
            continue
        matches = {dest for s, dest in strings.items() if s.startswith(name)}
        if len(matches) == 1:
            given |= matches
    return given


class Applied:
    """The defaults set on a command's parsers, to be settled once argv is parsed."""

    def __init__(
        self,
        config: ConfigFile,
        settings: dict[str, dict[str, Setting]],
        parsers: dict[str, argparse.ArgumentParser],
        original: dict[str, Any],  # dest -> the parser's own default
        given: set[str],  # dests typed on the command line
    ) -> None:
        self.config, self.settings, self.parsers = config, settings, parsers
        self.original, self.given = original, given

    def settle(self, args: argparse.Namespace) -> str | None:
        """Set aside a file's choice the command line made another way (--key-env over the
        file's key_file, --keyring over it...), and say what applied, for `-v`."""
        used: list[str] = []
        for name, settings in self.settings.items():
            leaf = self.parsers[name]
            for key, setting in settings.items():
                if key in self.given:
                    continue
                if _alternatives(leaf, key) & self.given:
                    setattr(args, key, self.original[key])
                    continue
                label = key if setting.origin == TOP else f"{key} {setting.origin}"
                if label not in used:
                    used.append(label)
        if not used:
            return None
        return f"defaults from {self.config.path}: {', '.join(used)}"


def apply(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Applied | None:
    """Set the file's defaults on the parsers of the command in argv, before parsing it."""
    at = _command_position(parser, argv)
    if at is None:
        return None
    rest = argv[at + 1 :]
    head = rest[: rest.index("--")] if "--" in rest else rest
    if "-h" in head or "--help" in head:
        return None
    command = argv[at]
    parsers = leaves(command, subcommands(parser)[command])
    if not any(_options(n, p) for n, p in parsers.items()):
        return None
    config = read_config()
    if config is None:
        return None
    check_tables(config, list(subcommands(parser)))
    settings = settings_for(config, command, subcommands(parser)[command])
    if not settings:
        return None
    original: dict[str, Any] = {}
    for name, values in settings.items():
        leaf = parsers[name]
        for action in leaf._actions:
            if action.dest in values:
                original.setdefault(action.dest, action.default)
        leaf.set_defaults(**{k: s.value for k, s in values.items()})
        # A required choice (watch's key) is met by the file's default.
        for group in leaf._mutually_exclusive_groups:
            if {a.dest for a in group._group_actions} & set(values):
                group.required = False
    return Applied(
        config, settings, parsers, original, _given_options(iter(parsers.values()), rest)
    )


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, str | None]:
    """argv parsed over the config file's defaults; with a note of what applied, for `-v`."""
    given = list(sys.argv[1:] if argv is None else argv)
    applied = apply(parser, given)
    args = parser.parse_args(given)
    return args, applied.settle(args) if applied else None
