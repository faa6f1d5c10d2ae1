"""Run solo-learn's ``main_pretrain.py`` unchanged with the W2 methods, on one GPU or many.

solo-learn's pre-training entry point is a script at the root of its source tree, not part
of the installed package. This module registers the W2 variants (``register(ALL)``: every
``<name>_w2`` of the methods in ``solo.methods.METHODS`` whose projector output is the
embedding, plus ``align_uniform`` and ``zero_cl``) and then executes that script's code as
``__main__``; the script's ``from solo.methods import METHODS`` sees the same dictionary, so
``method: byol_w2`` or ``method=vicreg_w2`` works. Nothing of the script is copied or changed.

Usage (every argument but ours goes to Hydra, as for ``python main_pretrain.py``)::

    export W2REG_SOLO_SRC=/path/to/solo-learn          # a clone of the solo-learn source
    python -m w2reg.adapters.solo_pretrain --config-name byol_w2 data=cifar100
    python -m w2reg.adapters.solo_pretrain --config-name byol_w2 "devices=[0,1]"   # 2 GPUs

Ours: ``--solo-src PATH`` (default ``$W2REG_SOLO_SRC``; a source tree or ``main_pretrain.py``
itself), ``--import MODULE`` (repeatable or comma-separated; default ``$W2REG_SOLO_IMPORT``):
modules imported first in every process, for your own methods (added to ``METHODS``, so
``method=<yours>_w2`` works too) and backbones, and ``-h`` / ``--help``. Without
``--config-path`` the configs shipped with w2reg are used (:data:`CONFIG_DIR`); a relative
``--config-path`` is relative to the working directory.

Several processes. Lightning starts ranks > 0 by re-running the command that started rank
0 with the same arguments (``python -m <__main__'s module> ...`` when ``__main__`` has a
module spec, else ``python <sys.argv[0]> ...``). The script is therefore executed *without*
replacing ``sys.modules["__main__"]``: under ``python -m w2reg.adapters.solo_pretrain``
every rank runs this module again, registers, and runs the script. What the other ranks need
travels in the environment, with absolute paths: ``W2REG_SOLO_SRC`` (the script),
``W2REG_SOLO_IMPORT`` (the ``--import`` modules), and ``--config-path`` made absolute.
torchrun and SLURM run the user's command in every rank, which does the same. ``ddp_spawn``
unpickles the model in fresh processes: :mod:`w2reg.adapters.solo` registers a ``...W2``
class on demand when it is looked up there (importing the ``W2REG_SOLO_IMPORT`` modules first).
Your own script calling :func:`main` works the same way if it passes ``sys.argv[1:]`` on.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ENV_VAR = "W2REG_SOLO_SRC"
IMPORT_ENV_VAR = "W2REG_SOLO_IMPORT"
SCRIPT = "main_pretrain.py"
PROG = "python -m w2reg.adapters.solo_pretrain"
#: The CIFAR-10/100 ResNet-18 configs of the paper's recipe, all eight methods, +/- W2.
CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "cifar"

USAGE = f"""\
usage: {PROG} [--solo-src PATH] [--import MODULE]... [HYDRA ARGS...]

Runs solo-learn's main_pretrain.py, unchanged, with the W2 methods registered: <name>_w2
for every method in solo.methods.METHODS whose projector output is the embedding (the
paper's eight, vicreg, swav, ... and yours), and align_uniform, zero_cl.
All other arguments go to Hydra, as for `python main_pretrain.py`.

options:
  --solo-src PATH   solo-learn's source tree (or its main_pretrain.py), which the installed
                    package lacks; default: ${ENV_VAR} (a clone of
                    https://github.com/vturrisi/solo-learn, or offline a local clone or an
                    unpacked archive of it; w2reg's docs/install.md, section solo-learn)
  --import MODULE   import MODULE first, in every process: your own methods (added to
                    solo.methods.METHODS, then <yours>_w2 works too) or backbones;
                    repeatable or comma-separated; default: ${IMPORT_ENV_VAR}
  -h, --help        this help, then Hydra's help for main_pretrain.py (needs the source)

Without --config-path the configs shipped with w2reg are used:
  {CONFIG_DIR}
{{configs}}
  (CIFAR-10; data=cifar100 for CIFAR-100).
A relative --config-path is relative to the working directory.

Examples:
  {PROG} --config-name barlow_twins_w2
  {PROG} --config-name byol_w2 "devices=[0,1]"        # 2 GPUs, DDP
  {PROG} --config-path my_configs --config-name vicreg method=vicreg_w2
"""

_CONFIG_PATH_OPTIONS = ("--config-path", "-cp", "--config-dir", "-cd")
_CONFIG_NAME_OPTIONS = ("--config-name", "-cn")

#: Where solo-learn's source tree comes from (it is not on PyPI).
SOURCE_HINT = (
    "git clone https://github.com/vturrisi/solo-learn, or without a network a local clone or "
    "an unpacked archive of it; w2reg's docs/install.md, section solo-learn, has the steps"
)


class SoloSourceNotFoundError(FileNotFoundError):
    """solo-learn's ``main_pretrain.py`` was not given or is not where it was said to be."""


class UserModuleImportError(ImportError):
    """A module named by ``--import`` / ``W2REG_SOLO_IMPORT`` could not be imported."""


class SoloNotInstalledError(ImportError):
    """solo-learn (or what it imports) is not installed, or not a supported version."""


class ConfigNotFoundError(FileNotFoundError):
    """``--config-name`` names no config in the config folder (the message lists them)."""


class Arguments(NamedTuple):
    """The command line split into ours and Hydra's."""

    solo_src: str | None
    imports: tuple[str, ...]
    help: bool
    hydra: list[str]


def find_main_pretrain(solo_src: str | os.PathLike[str] | None = None) -> Path:
    """The absolute path of solo-learn's ``main_pretrain.py``.

    Args:
        solo_src: a solo-learn source tree or the script itself; default: the environment
            variable ``W2REG_SOLO_SRC``.

    Raises:
        SoloSourceNotFoundError: neither is given, or the script is not there.
    """
    where = solo_src if solo_src is not None else os.environ.get(ENV_VAR)
    if not where:
        raise SoloSourceNotFoundError(
            f"solo-learn's {SCRIPT} is not in the installed package: get its source tree "
            f"({SOURCE_HINT}) and pass --solo-src PATH or set {ENV_VAR}=PATH"
        )
    path = Path(where).expanduser()
    if path.is_dir():
        path = path / SCRIPT
    if not path.is_file():
        raise SoloSourceNotFoundError(
            f"{SCRIPT} not found at {path} (from --solo-src / {ENV_VAR}={where!r}); point it "
            f"at solo-learn's source tree ({SOURCE_HINT})"
        )
    return path.resolve()


def _split_names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_args(argv: Sequence[str]) -> Arguments:
    """Take ``--solo-src``, ``--import`` and ``-h``/``--help`` out of ``argv``; keep the rest.

    Raises:
        SystemExit: an option of ours lacks its value.
    """
    solo_src: str | None = None
    imports: list[str] = []
    show_help = False
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--solo-src", "--import"):
            if not eq:
                if i + 1 >= len(args):
                    raise SystemExit(f"{PROG}: error: {name} needs a value")
                value, i = args[i + 1], i + 1
            if name == "--solo-src":
                solo_src = value
            else:
                imports += _split_names(value)
        elif arg in ("-h", "--help"):
            show_help = True
        else:
            rest.append(arg)
        i += 1
    return Arguments(solo_src, tuple(imports), show_help, rest)


def _absolute(path: str) -> str:
    if "://" in path:  # Hydra's pkg:// and file:// search paths
        return path
    return str(Path(path).expanduser().absolute())


def with_config_path(hydra_args: Sequence[str]) -> list[str]:
    """Hydra's arguments with ``--config-path`` / ``--config-dir`` absolute (against the
    working directory), and the shipped :data:`CONFIG_DIR` when no ``--config-path`` is given.

    Example: ``["-cp", "my_configs", "--config-name", "x"]`` ->
    ``["-cp", "/cwd/my_configs", "--config-name", "x"]``.
    """
    out: list[str] = []
    has_config_path = False
    args = list(hydra_args)
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _CONFIG_PATH_OPTIONS:
            has_config_path |= name in ("--config-path", "-cp")
            if eq:
                out.append(f"{name}={_absolute(value)}")
            elif i + 1 < len(args):
                out += [name, _absolute(args[i + 1])]
                i += 1
            else:
                out.append(arg)  # Hydra reports the missing value
        else:
            out.append(arg)
        i += 1
    if not has_config_path:
        out.insert(0, f"--config-path={CONFIG_DIR}")
    return out


def _option(args: Sequence[str], names: Sequence[str]) -> str | None:
    """The value of the last of Hydra's options ``names`` in ``args`` (``-o v`` or ``-o=v``)."""
    found = None
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in names:
            found = value if eq else (args[i + 1] if i + 1 < len(args) else None)
    return found


def check_config_name(hydra_args: Sequence[str]) -> None:
    """Say which configs there are when ``--config-name`` names none in the config folder.

    Hydra's own error (``Cannot find primary config 'byol_w3'``) lists nothing. Checked where
    that can be told from the arguments: a ``--config-name`` and a ``--config-path`` that is a
    local folder (after :func:`with_config_path`), without ``--config-dir`` (another search path).

    Raises:
        ConfigNotFoundError: no ``<name>.yaml`` there; the message lists the folder's configs.
    """
    name = _option(hydra_args, _CONFIG_NAME_OPTIONS)
    folder = _option(hydra_args, ("--config-path", "-cp"))
    extra = _option(hydra_args, ("--config-dir", "-cd"))
    if name is None or folder is None or "://" in folder or extra is not None:
        return
    root = Path(folder)
    file = root / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not root.is_dir() or file.is_file():
        return
    names = (
        shipped_configs()
        if root.resolve() == CONFIG_DIR
        else sorted(p.stem for p in root.glob("*.yaml"))
    )
    close = difflib.get_close_matches(name.removesuffix(".yaml"), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigNotFoundError(
        f"--config-name {name}: there is no {file.name} in {root}.{hint} The configs there: "
        f"{' '.join(names) or '(none)'}"
    )


def user_modules() -> tuple[str, ...]:
    """The module names in ``W2REG_SOLO_IMPORT`` (comma-separated)."""
    return tuple(_split_names(os.environ.get(IMPORT_ENV_VAR, "")))


def import_user_modules(names: Sequence[str] | None = None) -> None:
    """Import ``names`` (default: :func:`user_modules`), in order; already imported ones are kept.

    Raises:
        UserModuleImportError: a module could not be found or raised while importing; the
            message names it and where Python looked.
    """
    for name in user_modules() if names is None else names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserModuleImportError(
                f"--import / {IMPORT_ENV_VAR}: cannot import {name!r}: {err}. Give a module "
                "name importable in every process: an installed package, or a module in the "
                f"working directory ({os.getcwd()}) or on PYTHONPATH",
                name=name,
            ) from err


@contextmanager
def _process_state(script: Path, imports: Sequence[str], argv: list[str]) -> Iterator[None]:
    """``sys.argv``, ``sys.path`` and the environment of a run; restored afterwards."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_env = {k: os.environ.get(k) for k in (ENV_VAR, IMPORT_ENV_VAR)}
    os.environ[ENV_VAR] = str(script)
    os.environ[IMPORT_ENV_VAR] = ",".join(imports)
    # as `python main_pretrain.py` would: the script's folder first, so a solo-learn source
    # tree that is not installed works too
    sys.path.insert(0, str(script.parent))
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_script(script: Path) -> None:
    """Execute ``script`` as ``__main__`` *without* replacing ``sys.modules["__main__"]``.

    ``runpy.run_path(..., run_name="__main__")`` would swap in a module without a spec and
    set ``sys.argv[0]`` to the script, and Lightning would then start the other ranks as
    ``python main_pretrain.py ...``, in which nothing is registered.
    """
    code = compile(script.read_bytes(), str(script), "exec")
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": str(script),
        "__builtins__": builtins,
        "__doc__": None,
        "__package__": None,
        "__spec__": None,
        "__loader__": None,
        "__cached__": None,
    }
    exec(code, namespace)


def shipped_configs() -> list[str]:
    """The ``--config-name`` values of the shipped configs (:data:`CONFIG_DIR`)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "common")


def _print_help(args: Arguments) -> None:
    names = textwrap.fill(
        "--config-name one of: " + " ".join(shipped_configs()),
        width=88,
        initial_indent="  ",
        subsequent_indent="    ",
    )
    print(USAGE.format(configs=names))
    try:
        script = find_main_pretrain(args.solo_src)
    except SoloSourceNotFoundError as err:
        print(f"solo-learn source: not set or not found. {err}")
        return
    print(f"solo-learn source: {script}\n\nHydra's help for {SCRIPT} follows.\n", flush=True)
    _run(script, args.imports, [*with_config_path(args.hydra), "--help"])


def _run(script: Path, imports: Sequence[str], hydra_args: list[str]) -> None:
    with _process_state(script, imports, [sys.argv[0], *hydra_args]):
        import_user_modules(imports)
        try:
            from w2reg.adapters import solo
        except ImportError as err:
            raise SoloNotInstalledError(str(err), name=err.name) from err

        solo.register(solo.ALL)
        run_script(script)


def main(argv: Sequence[str] | None = None) -> None:
    """Register the W2 methods, then run ``main_pretrain.py`` with Hydra's part of ``argv``.

    Args:
        argv: the command line without the program (default ``sys.argv[1:]``).

    Raises:
        SoloSourceNotFoundError: no solo-learn source (see :func:`find_main_pretrain`).
        UserModuleImportError: an ``--import`` module failed to import.
        SoloNotInstalledError: solo-learn is not installed (the message says how to).
        ConfigNotFoundError: ``--config-name`` is not in the config folder (the message
            lists the configs there).
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        _print_help(args)
        return
    hydra_args = with_config_path(args.hydra)
    check_config_name(hydra_args)
    script = find_main_pretrain(args.solo_src)
    imports = args.imports or user_modules()
    _run(script, imports, hydra_args)


def _cli() -> int:
    try:
        main()
    except (
        SoloSourceNotFoundError,
        UserModuleImportError,
        SoloNotInstalledError,
        ConfigNotFoundError,
    ) as err:
        print(f"{PROG}: error: {err}\n(see {PROG} --help)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
