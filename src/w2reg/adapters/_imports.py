"""The adapters' optional imports, in one place: Lightning's package and the install hints.

Lightning ships as ``lightning`` (2.x, ``lightning.pytorch``) and as the older
``pytorch_lightning`` (1.9+); every adapter uses whichever is installed, the 2.x one first.
A missing library is reported once, naming the extra that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: What installs each optional stack (the extras of pyproject.toml).
INSTALL = {
    "lightly": 'pip install "w2reg[lightly]"  (lightly, torchvision and Lightning; from a clone '
    'of w2reg, which is not on PyPI yet: pip install -e ".[lightly]")',
    "timm": 'pip install timm  (or the examples\' extra, "w2reg[examples]"; from a clone: '
    'pip install -e ".[examples]")',
    "lightning": 'pip install lightning  (or the extra of your library: "w2reg[lightly]", '
    '"w2reg[solo]"; from a clone: pip install -e ".[lightly]")',
    "spt": 'pip install "w2reg[spt]"  (stable-pretraining and Lightning; from a clone of w2reg: '
    'pip install -e ".[spt]")',
}


def missing(what: str, extra: str, err: ImportError) -> ModuleNotFoundError:
    """The error to raise when ``what`` cannot import ``err.name``: it says what to install."""
    return ModuleNotFoundError(
        f"{what} needs {err.name or 'a package that is not installed'} ({err}); install it with: "
        f"{INSTALL[extra]}",
        name=err.name,
    )


def lightning(what: str, extra: str = "lightning") -> ModuleType:
    """``lightning.pytorch`` when installed, else ``pytorch_lightning``; else an error naming
    ``what`` needs it and the install command of ``extra`` (a key of :data:`INSTALL`)."""
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError as first:
        try:
            return importlib.import_module("pytorch_lightning")
        except ImportError:
            raise missing(what, extra, first) from first
