"""Which solo-learn is installed, and which of its two APIs the adapter speaks to.

* ``"cfg"``: the Hydra/``cfg`` API (git tags 1.0.6, 1.0.7, 1.0.8 and main, all of which install
  with the version number 1.0.6): a method is built from one ``omegaconf.DictConfig`` and
  validates it in its static ``add_and_assert_specific_cfg``;
* ``"legacy"``: PyPI's solo-learn 1.0.2 (2021): keyword-argument constructors
  (``add_model_specific_args`` for argparse).

Importing this module imports ``solo.methods.base``; any other solo-learn (1.0.3 to 1.0.5), or
none, raises ``ImportError`` naming the installed version, the supported ones and how to install
current solo-learn (:data:`INSTALL_HINT`).
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["INSTALL_HINT", "SOLO_API", "SOLO_VERSION", "SUPPORTED_VERSIONS", "detect"]

#: What this adapter supports, as printed in the ImportError for anything else.
SUPPORTED_VERSIONS = (
    "solo-learn with the Hydra cfg API (git tags 1.0.6, 1.0.7, 1.0.8 and main, all of which "
    "install as version 1.0.6), or solo-learn 1.0.2 from PyPI (registration and training step)"
)

#: How to install current solo-learn (it is not on PyPI), as the ImportErrors print it. The
#: source may be a clone of GitHub's repository or, offline, a local clone or archive of it.
INSTALL_HINT = (
    "install it from a source tree (git clone https://github.com/vturrisi/solo-learn, or "
    "offline a local clone or an unpacked archive of it): pip install 'setuptools<81' wheel; "
    "pip install --no-build-isolation --no-deps /path/to/solo-learn; then its requirements "
    "with 'setuptools<81' in the same command (pip install 'lightning==2.1.2' ... hydra-core "
    "'setuptools<81') and w2reg's extra (pip install -e '.[solo]' in a clone of w2reg). "
    "w2reg's documentation, page Install, section solo-learn (docs/install.md in its source "
    "repository) has the commands in order and the versions we test"
)


def _installed_version() -> str:
    for dist in ("solo-learn", "solo"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def detect() -> tuple[str, str]:
    """``(api, version)`` of the installed solo-learn, e.g. ``("cfg", "1.0.6")``.

    Raises:
        ModuleNotFoundError: solo-learn, or a package it imports, is not installed (the
            message says how to install it).
        ImportError: an unsupported solo-learn (the message names its version).
    """
    try:
        from solo.methods import base as solo_base
    except ImportError as err:
        error = ModuleNotFoundError if isinstance(err, ModuleNotFoundError) else ImportError
        raise error(
            f"w2reg.adapters.solo needs solo-learn ({SUPPORTED_VERSIONS}); importing it "
            f"failed: {err}. To {INSTALL_HINT}",
            name=err.name,
        ) from err
    version = _installed_version()
    base = solo_base.BaseMethod
    if hasattr(base, "add_and_assert_specific_cfg"):
        return "cfg", version
    if version == "1.0.2" and hasattr(base, "add_model_specific_args"):
        return "legacy", version
    raise ImportError(
        f"w2reg.adapters.solo: installed solo-learn {version} is not supported; supported: "
        f"{SUPPORTED_VERSIONS}. To use the current one, {INSTALL_HINT}"
    )


#: ``"cfg"`` (current solo-learn) or ``"legacy"`` (1.0.2), and the installed version string.
SOLO_API, SOLO_VERSION = detect()
