#!/usr/bin/env bash
# Regenerates the fully pinned constraints files from their .in files with uv's resolver, which
# resolves this stack in seconds where pip backtracks for many minutes. Needs network access to PyPI.
#   bash tools/lock.sh            # all stacks
set -euo pipefail
cd "$(dirname "$0")/.."
uv_venv=$(mktemp -d)  # a throwaway venv for uv itself
python3 -m venv "$uv_venv" && "$uv_venv/bin/pip" install -q uv
uv="$uv_venv/bin/uv"
compile() {  # name python-version platform
  "$uv" pip compile "constraints/$1.in" --python-version "$2" --python-platform "$3" \
    --no-header --no-annotate -o "constraints/$1.txt"
  sed -i '1i # Fully pinned lock for keel; chosen by tools/install.py. Regenerate with tools/lock.sh.' "constraints/$1.txt"
}
compile tfx1.16-py3.11 3.11 x86_64-manylinux_2_28
compile tfx1.16-py3.10 3.10 x86_64-manylinux_2_28
compile tfx1.21-py3.11-glibc2.39 3.11 x86_64-manylinux_2_39
rm -rf "$uv_venv"
