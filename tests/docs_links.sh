#!/usr/bin/env bash
# docs/ is self-contained: no link or reference from docs/*.md or the README to anything outside the
# repository (other checkouts, web pages), and every relative Markdown link resolves to a file here.
#   tests/docs_links.sh [REPO_ROOT]
set -euo pipefail
root=$(realpath "${1:-$(dirname "$0")/..}")
cd "$root"
bad=0
for f in docs/*.md README.md firmware/README.md; do
  dir=$(dirname "$f")
  # References out of the repository: a path climbing above it, or the shared specs next to it.
  if grep -nE '\.\./shared|\]\(\.\./\.\.|`\.\./\.\.' "$f"; then
    echo "docs_links: $f points outside the repository (above)" >&2; bad=1
  fi
  if [[ $f == docs/* ]] && grep -nE 'https?://' "$f"; then
    echo "docs_links: $f links to the web (above); bring the facts in, in our words" >&2; bad=1
  fi
  # Relative Markdown links must resolve inside the repository.
  while IFS= read -r target; do
    target=${target%%#*}
    [[ -z $target || $target == http* || $target == mailto:* ]] && continue
    resolved=$(realpath -m "$dir/$target")
    if [[ $resolved != "$root"/* || ! -e $resolved ]]; then
      echo "docs_links: $f links to '$target', which is not a file in the repository" >&2; bad=1
    fi
  done < <(grep -oE '\]\([^) ]+\)' "$f" | sed -E 's/^\]\((.*)\)$/\1/')
done
((bad == 0)) || exit 1
echo "docs_links: docs/ and the READMEs stay inside the repository"
