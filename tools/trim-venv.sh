#!/usr/bin/env bash
# Runs in the images' build stage, on the runtime virtualenv's site-packages: drops what only a
# developer of those packages uses (their test suites, type stubs, C/Cython sources and headers)
# and the symbol tables of extension modules, about a third of the ingest image's dependencies.
# The auditwheel-bundled libraries (*.libs/) are left whole: stripping them breaks their loading.
set -euo pipefail
cd "$1"
find . -depth -type d -name tests -exec rm -rf {} +
find . -type f \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
  -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -delete
find . -path './*.libs' -prune -o -type f -name '*.so' -exec strip --strip-unneeded {} +
