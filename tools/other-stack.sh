#!/usr/bin/env bash
# Runs a command in this checkout on keel's other stack, in a Debian root filesystem made with
# debootstrap and entered with chroot (needs root):
#   glibc < 2.39 host (Debian 12):   a Debian 13 root: Python 3.13, glibc 2.41 -> TFX 1.21
#   glibc >= 2.39 host (Debian 13):  a Debian 12 root: Python 3.11, glibc 2.36 -> TFX 1.16
#
#   bash tools/other-stack.sh 'make test'
#   KEEL_ROOT_SUITE=noble bash tools/other-stack.sh 'make demo'   # another root: Ubuntu 24.04 here
#
# The root is kept in $KEEL_ROOTS (default /var/cache/keel) and reused; so is the .venv inside it.
# The checkout is copied in fresh each time (a clone of HEAD plus the working tree's changes).
# The host's CA bundle and pip configuration are copied in, so pip reaches the same registries.
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:?usage: tools/other-stack.sh COMMAND}
say() { echo "other-stack: $*"; }

glibc=$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)
if [ "$(printf '%s\n2.39\n' "$glibc" | sort -V | head -n1)" = 2.39 ]; then suite=bookworm; else suite=trixie; fi
suite=${KEEL_ROOT_SUITE:-$suite}
case $suite in  # Ubuntu's suites need its archive keyring on the host (debootstrap checks signatures)
  jammy|noble) mirror=http://archive.ubuntu.com/ubuntu; components=main,universe ;;
  *) mirror=http://deb.debian.org/debian; components=main ;;
esac
root=${KEEL_ROOTS:-/var/cache/keel}/$suite
say "host glibc $glibc; the other stack in a $suite root at $root"

if [ ! -e "$root/.keel-root-complete" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  fi
  rm -rf "$root"; mkdir -p "$root"
  started=$SECONDS
  debootstrap --variant=minbase --components="$components" \
    --include=python3,python3-venv,python3-dev,make,git,ca-certificates,build-essential \
    "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || { tail -n 20 "$root.debootstrap.log"; say "error: debootstrap $suite failed; log: $root.debootstrap.log"; exit 2; }
  touch "$root/.keel-root-complete"
  say "made the $suite root in $((SECONDS - started))s"
fi

mounts=()
cleanup() {
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
}
trap cleanup EXIT
bind_mount() {  # source target [remount options]
  mkdir -p "$2"; mount --rbind "$1" "$2"; mount --make-rslave "$2"; mounts+=("$2")
  [ -z "${3:-}" ] || mount -o "remount,bind,$3" "$2"
}
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
bind_mount /dev "$root/dev"
bind_mount /sys "$root/sys"

# pip's settings: the CA bundle, config files and PIP_* variables, and the local folders they name
# (a local index's pages point at files beside them, so each such folder's top-level directory).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
pip_files=()
for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/xdg/pip/constraints.txt /root/.config/pip/pip.conf /root/.pip/pip.conf; do
  [ -f "$f" ] || continue
  mkdir -p "$root$(dirname "$f")"; cp "$f" "$root$f"; pip_files+=("$f")
done
named_dirs() {
  { cat "${pip_files[@]}" /dev/null; env | grep '^PIP_' || true; } | grep -oE '(file://)?/[^ ]+' | sed 's#^file://##'
}
for top in $(named_dirs | while read -r p; do [ -d "$p" ] && echo "/$(echo "${p#/}" | cut -d/ -f1)"; done | sort -u); do
  case $top in /etc|/usr|/bin|/sbin|/lib*|/root|/home|/var|/tmp|/proc|/sys|/dev|/run) continue ;; esac
  bind_mount "$top" "$root$top" ro
done

# The checkout: HEAD, then the working tree's changed, new and deleted files; .venv kept across runs.
dest=$root/root/keel
# A .keel-venv left by an interrupted run is older than the checkout's own .venv.
if [ -d "$dest/.venv" ] && [ ! -L "$dest/.venv" ]; then rm -rf "$root/root/.keel-venv"; mv "$dest/.venv" "$root/root/.keel-venv"; fi
rm -rf "$dest"
git clone -q . "$dest"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$dest"
git ls-files -z -d | (cd "$dest" && xargs -0 -r rm -f)
[ ! -d "$root/root/.keel-venv" ] || mv "$root/root/.keel-venv" "$dest/.venv"

say "running in $suite: $command"
env_vars=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
          SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
while IFS= read -r line; do env_vars+=("$line"); done < <(env | grep -E '^PIP_' || true)
chroot "$root" env -i "${env_vars[@]}" sh -c "cd /root/keel && $command"
