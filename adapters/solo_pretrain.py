"""Run solo-learn's ``main_pretrain.py`` unchanged, with the W2 methods registered.

solo-learn's pre-training entry point is a script at the root of its source tree, not part
of the installed package. This module registers the W2 variants (and AlignUniform, Zero-CL)
into ``solo.methods.METHODS`` and then executes that script as ``__main__`` with
:func:`runpy.run_path`; the script's ``from solo.methods import METHODS`` sees the same
dictionary, so ``method: byol_w2`` works. Nothing of the script is copied or changed.

Usage (every argument but ``--solo-src PATH`` goes to Hydra, as for
``python main_pretrain.py``)::

    export W2REG_SOLO_SRC=/path/to/solo-learn          # a clone of the solo-learn source
    python -m w2reg.adapters.solo_pretrain --config-name byol_w2 data=cifar100

Without ``--config-path`` (``-cp``) the configs shipped with w2reg are used
(:data:`CONFIG_DIR`, ``w2reg/adapters/configs/cifar``); pass your own to use yours.
``--solo-src`` may also name ``main_pretrain.py`` itself.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

ENV_VAR = "W2REG_SOLO_SRC"
SCRIPT = "main_pretrain.py"
#: The CIFAR-10/100 ResNet-18 configs of the paper's recipe, all eight methods, +/- W2.
CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "cifar"


def find_main_pretrain(solo_src: str | os.PathLike[str] | None = None) -> Path:
    """The path of solo-learn's ``main_pretrain.py``.

    Args:
        solo_src: a solo-learn source tree or the script itself; default: the environment
            variable ``W2REG_SOLO_SRC``.

    Raises:
        FileNotFoundError: neither is given, or the script is not there.
    """
    where = solo_src if solo_src is not None else os.environ.get(ENV_VAR)
    if not where:
        raise FileNotFoundError(
            f"solo-learn's {SCRIPT} is not in the installed package: clone the source "
            "(git clone https://github.com/vturrisi/solo-learn) and pass --solo-src PATH or "
            f"set {ENV_VAR}=PATH"
        )
    path = Path(where).expanduser()
    if path.is_dir():
        path = path / SCRIPT
    if not path.is_file():
        raise FileNotFoundError(f"{SCRIPT} not found at {path} (from --solo-src / {ENV_VAR})")
    return path.resolve()


def _split_args(argv: list[str]) -> tuple[str | None, list[str]]:
    solo_src, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--solo-src":
            if i + 1 >= len(argv):
                raise SystemExit("--solo-src needs a PATH")
            solo_src, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--solo-src="):
            solo_src = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return solo_src, rest


def main(argv: list[str] | None = None) -> None:
    """Register the W2 methods, then run ``main_pretrain.py`` with ``argv`` (Hydra's args)."""
    solo_src, rest = _split_args(list(sys.argv[1:] if argv is None else argv))
    script = find_main_pretrain(solo_src)
    if not any(a in ("-cp", "--config-path") or a.startswith("--config-path=") for a in rest):
        rest = [f"--config-path={CONFIG_DIR}", *rest]

    from w2reg.adapters import solo

    solo.register()
    saved_argv = sys.argv[:]
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    main()
