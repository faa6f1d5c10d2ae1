#!/usr/bin/env bash
# Build the documentation site from docs/ and README.md (MkDocs + mkdocstrings, mkdocs.yml),
# in strict mode: a broken link, anchor or API cross-reference, a page missing from the nav or
# any other warning fails the build.
#
#   bash tools/build_docs.sh            # -> site/ (CI: .ci/run)
#   bash tools/build_docs.sh serve      # live preview on http://127.0.0.1:8000
#
# The tools live in a venv of their own outside the repository, made once from the pinned
# tools/docs-requirements.txt and remade when that file changes:
#   W2REG_DOCS_VENV (default ~/.cache/w2reg-ci/docs-venv). W2REG_DOCS_SITE: the output folder.
# Nothing of w2reg is installed or imported: the API reference is read from the source.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${W2REG_DOCS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/w2reg-ci/docs-venv}
requirements=$repo/tools/docs-requirements.txt

if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    py=$(command -v python3.11 || command -v python3)
    echo "docs: creating $venv with $py"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -qq -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

cd "$repo"
if [ "${1:-build}" = serve ]; then
    exec "$venv/bin/mkdocs" serve
fi
"$venv/bin/mkdocs" build --strict --site-dir "${W2REG_DOCS_SITE:-$repo/site}"
