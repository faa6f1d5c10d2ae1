"""Load a script from examples/ as a module, the way the tests of the examples need it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (its folder on ``sys.path`` for its own helpers).

    The scripts' helper modules (``_datasets``, ``_evaluation``, ...) are imported under their
    own names, so a test sees (and may monkeypatch) the very module the scripts use.
    """
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    if name.startswith("_"):
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(f"_w2reg_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
