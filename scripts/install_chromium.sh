#!/usr/bin/env bash
# Headless Chromium for the docs browser tests (tests/test_docs.py). Idempotent: a no-op when chromium is installed;
# otherwise Debian's package without recommends (~124 MB download). Needs root (or sudo) and the Debian mirrors;
# when it cannot install, it says so and exits 0, and the browser tests skip with that reason.
set -uo pipefail
for c in /usr/bin/chromium /usr/bin/chromium-browser "$(command -v chromium 2>/dev/null)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then exit 0; fi
done
if ! command -v apt-get >/dev/null; then
  echo "install_chromium: no apt-get here; install Chromium yourself to run the docs browser tests" >&2; exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_chromium: not root and no passwordless sudo; the docs browser tests will be skipped" >&2; exit 0; fi
fi
echo "install_chromium: installing Debian's chromium (headless browser for tests/test_docs.py) ..."
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "install_chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
else
  echo "install_chromium: apt-get failed; the docs browser tests will be skipped" >&2
fi
exit 0
