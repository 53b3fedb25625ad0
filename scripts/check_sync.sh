#!/usr/bin/env bash
# nbs/ is the source of truth: fail if nbdev_export or nbdev_clean changes anything (ntp_rl/ out of date, or a notebook
# committed uncleaned). Works with local edits too: it compares the working tree before and after.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
state() { { git diff --no-ext-diff; git ls-files --others --exclude-standard; } | sha1sum; }
before=$(state)
nbdev_export
nbdev_clean
python scripts/make_readme.py >/dev/null
python scripts/build_docs.py --sidebar >/dev/null
after=$(state)
if [ "$before" != "$after" ]; then
  echo "error: nbdev_export/nbdev_clean/make_readme/build_docs --sidebar changed files: ntp_rl/, README.md or nbs/sidebar.yml was out of sync with nbs/, or a notebook was not cleaned." >&2
  echo "       They are now re-exported and cleaned; review 'git diff' and commit." >&2
  git status --short >&2
  exit 1
fi
echo "nbs/ and ntp_rl/ in sync"
