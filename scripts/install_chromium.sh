#!/usr/bin/env bash
# Install Debian's headless-capable chromium for the browser tests (tests/test_viewer.py). Idempotent: a no-op when
# /usr/bin/chromium already exists. Needs root (or sudo) and a reachable Debian mirror; see shared/docs/environment.md §7.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"; exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else echo "error: installing chromium needs root; run as root or install sudo" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
