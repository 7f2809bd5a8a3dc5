#!/usr/bin/env bash
# System packages the studio needs beside Python: Chromium for the browser tests, OpenBLAS for fast mlx on Linux.
# Installs only what is missing, only where apt-get exists (Debian/Ubuntu); on a Mac it says what to do instead.
set -euo pipefail
if [ "$(uname -s)" = "Darwin" ]; then
  [ -x "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" ] || [ -x /Applications/Chromium.app/Contents/MacOS/Chromium ] \
    || echo "note: install Chrome or Chromium to run the browser tests (they are skipped without one)"
  exit 0
fi
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "$(uname -m)" = "x86_64" ] || [ "$(uname -m)" = "aarch64" ]; then
  ls /usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0 >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
fi
command -v git >/dev/null || missing+=(git)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "note: please install ${missing[*]} with your package manager" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
