#!/usr/bin/env bash
# The notebooks as a static Jupyter Book (MyST), from their saved outputs (nothing is
# executed): every comparison view as its saved HTML table, every mount tree as its SVG.
# Output: book/_build/html/index.html. Needs `pip install ".[book]"` (jupyter-book 1.x).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
jb=${JUPYTER_BOOK:-jupyter-book}
exec "$jb" build "$here/notebooks" --config "$here/book/_config.yml" \
  --toc "$here/book/_toc.yml" --path-output "$here/book" "$@"
