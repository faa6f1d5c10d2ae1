"""Put one solo-learn version's source tree at ``--dest`` and install it into the running env.

    python tools/install_solo_src.py 1.0.8 --dest DIR          # tox's solo envs call this

``REF`` names one solo-learn snapshot: a tag (``1.0.8``) or ``main-<commit>`` (``main-9187ea3``).
PyPI has only solo-learn 1.0.2 (2021); every later version, the Hydra/cfg API the solo adapter
supports fully, exists only as git source. Where it comes from:

1. ``--archives`` (default ``../shared/third_party/solo-learn`` next to the repository root,
   or ``$W2REG_SOLO_ARCHIVES``) when that folder exists: ``solo-learn-REF.tar.gz`` in it is
   unpacked (CI machines, which cannot reach git hosts, carry these snapshots);
2. otherwise a clone of https://github.com/vturrisi/solo-learn (or ``$W2REG_SOLO_GIT``, a
   mirror) checked out at the tag or commit (a user's own CI).

Either way the tree lands at ``DEST/solo-learn`` (``main_pretrain.py`` included, which the
installed package lacks; tox.ini points ``W2REG_SOLO_SRC`` there for the tests) and is
installed from there. Nothing is skipped: a missing archive or an unreachable GitHub is an
error that names both places, and the env fails.

solo-learn's setup.py imports ``pkg_resources``, so it is built with the env's
``setuptools<81`` and ``--no-build-isolation``; ``--no-deps`` because its pins (``lightning``,
``pytorch-lightning`` ...) are tox.ini's ``deps`` of that env.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GITHUB = os.environ.get("W2REG_SOLO_GIT") or "https://github.com/vturrisi/solo-learn"
DEFAULT_ARCHIVES = REPO.parent / "shared" / "third_party" / "solo-learn"
TREE = "solo-learn"  # the archives' top folder
GIT_TIMEOUT_S = 300


def git_ref(ref: str) -> str:
    """The git tag or commit that ``ref`` names: ``main-9187ea3`` -> ``9187ea3``."""
    return ref.removeprefix("main-")


def archive_dir(given: str | None) -> Path:
    return Path(given or os.environ.get("W2REG_SOLO_ARCHIVES") or DEFAULT_ARCHIVES)


def unpack(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` (one top folder ``solo-learn/``) into ``dest``; return the tree."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        if not names or any(n.split("/", 1)[0] != TREE for n in names):
            raise SystemExit(f"{archive}: expected one top folder {TREE}/, got {names[:3]}...")
        if hasattr(tarfile, "data_filter"):  # 3.12, and 3.10.12 / 3.11.4 on
            tar.extractall(dest, filter="data")
        else:  # older patch releases: the names were checked above
            tar.extractall(dest)
    return dest / TREE


def clone(ref: str, dest: Path) -> Path:
    """Clone solo-learn from GitHub into ``dest/solo-learn`` at ``git_ref(ref)``."""
    tree = dest / TREE
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    for cmd in (
        ["git", "clone", "--quiet", "--filter=blob:none", GITHUB, str(tree)],
        ["git", "-C", str(tree), "checkout", "--quiet", git_ref(ref)],
    ):
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env
            )
        except (FileNotFoundError, subprocess.TimeoutExpired) as err:
            raise SystemExit(_no_source(ref, f"{' '.join(cmd)}: {err}")) from err
        if proc.returncode != 0:
            raise SystemExit(_no_source(ref, f"{' '.join(cmd)}: {proc.stderr.strip()}"))
    return tree


def _no_source(ref: str, why: str) -> str:
    return (
        f"ERROR: no source for solo-learn {ref}: the archive folder {DEFAULT_ARCHIVES} "
        f"(or $W2REG_SOLO_ARCHIVES) does not exist and GitHub failed ({why}). This env tests "
        f"solo-learn {ref} and fails without it; put solo-learn-{ref}.tar.gz (a `git archive "
        f"--prefix={TREE}/` of {GITHUB} at {git_ref(ref)}) in that folder or allow git access."
    )


def install(tree: Path) -> int:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--force-reinstall",
        str(tree),
    ]
    print("installing:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", help="a tag (1.0.8) or main-<commit> (main-9187ea3)")
    ap.add_argument("--dest", type=Path, required=True, help="the tree goes to DEST/solo-learn")
    ap.add_argument(
        "--archives", help=f"folder of solo-learn-REF.tar.gz (default {DEFAULT_ARCHIVES})"
    )
    args = ap.parse_args(argv)
    folder = archive_dir(args.archives)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    if folder.is_dir():
        archive = folder / f"solo-learn-{args.ref}.tar.gz"
        if not archive.is_file():
            have = sorted(p.name for p in folder.glob("solo-learn-*.tar.gz"))
            raise SystemExit(f"ERROR: {archive} does not exist (that folder has {have})")
        tree = unpack(archive, args.dest)
        origin = str(archive)
    else:
        print(f"{folder} does not exist: cloning {GITHUB} at {git_ref(args.ref)}", flush=True)
        tree = clone(args.ref, args.dest)
        origin = f"{GITHUB}@{git_ref(args.ref)}"
    if not (tree / "main_pretrain.py").is_file():
        raise SystemExit(f"ERROR: {origin} has no main_pretrain.py at {tree}")
    (tree / ".w2reg-origin").write_text(f"{args.ref}\n{origin}\n")
    print(f"solo-learn {args.ref} from {origin} -> {tree}", flush=True)
    return install(tree)


if __name__ == "__main__":
    sys.exit(main())
