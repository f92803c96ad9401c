#!/usr/bin/env bash
# Regenerates the fully pinned constraints files from their .in files with uv's resolver, which
# resolves these stacks in seconds where pip backtracks for many minutes. Needs network access to PyPI
# only: uv resolves for the target Python and platform, so any host can lock every stack.
#   bash tools/lock.sh                             # all stacks
#   bash tools/lock.sh tfx1.21-py3.13-glibc2.39    # just these
set -euo pipefail
cd "$(dirname "$0")/.."
# lock name: input, Python, platform
declare -A STACKS=(
  [tfx1.21-py3.13-glibc2.39]="tfx1.21 3.13 x86_64-manylinux_2_39"
  [tfx1.21-py3.12-glibc2.39]="tfx1.21 3.12 x86_64-manylinux_2_39"
  [tfx1.21-py3.11-glibc2.39]="tfx1.21 3.11 x86_64-manylinux_2_39"
  [tfx1.16-py3.11]="tfx1.16-py3.11 3.11 x86_64-manylinux_2_28"
  [tfx1.16-py3.10]="tfx1.16-py3.10 3.10 x86_64-manylinux_2_28"
)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${!STACKS[@]}")
uv_venv=$(mktemp -d)  # a throwaway venv for uv itself
trap 'rm -rf "$uv_venv"' EXIT
python3 -m venv "$uv_venv" && "$uv_venv/bin/pip" install -q uv
for lock in "${wanted[@]}"; do
  [ -n "${STACKS[$lock]:-}" ] || { echo "lock.sh: unknown stack $lock; known: ${!STACKS[*]}" >&2; exit 2; }
  read -r input python platform <<<"${STACKS[$lock]}"
  "$uv_venv/bin/uv" pip compile "constraints/$input.in" --python-version "$python" --python-platform "$platform" \
    --no-header --no-annotate -q -o "constraints/$lock.txt"
  sed -i '1i # Fully pinned lock for keel; chosen by tools/install.py. Regenerate with tools/lock.sh.' "constraints/$lock.txt"
  echo "lock.sh: constraints/$lock.txt: $(grep -c '==' "constraints/$lock.txt") packages"
done
