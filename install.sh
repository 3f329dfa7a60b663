#!/usr/bin/env bash
# Builds interop if needed and installs the single executable (default ~/.local/bin). Safe to run again.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./install.sh [--prefix DIR]

Installs the interop executable into DIR/bin (default DIR: ~/.local).
Runs `npm ci` and `npm run build` first when the checkout has not been built yet.
USAGE
}

prefix="${HOME}/.local"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option: $1 (see ./install.sh --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "error: npm is needed to build interop; install Node.js and npm first" >&2; exit 1; }

if [ ! -x node_modules/.bin/node ]; then
  # npm warns EBADENGINE under a Node older than 24: harmless, the toolchain it installs brings Node 24.
  echo "interop: installing the toolchain (npm ci: Node 24, Deno 2 and esbuild from the npm registry)..." >&2
  npm ci --no-audit --no-fund >&2 || {
    echo "error: npm ci could not install the toolchain (npm's error is above): it downloads from the npm registry, so it needs the network (or a proxy or mirror set in npm config); then run ./install.sh again" >&2
    exit 1
  }
fi
if [ ! -x dist/interop ] || [ -n "$(find src build.ts package-lock.json -newer dist/interop -print -quit)" ]; then
  echo "interop: building dist/interop..." >&2
  npm run --silent build >&2
fi

bindir="${prefix}/bin"
target="${bindir}/interop"
mkdir -p "$bindir"
if [ -x "$target" ] && cmp -s dist/interop "$target"; then
  echo "interop: $target is already up to date ($("$target" --version))"
else
  # Copy then rename: a running broker keeps its old executable, and the new one appears whole.
  cp dist/interop "$target.tmp.$$"
  chmod 755 "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  echo "interop: installed $("$target" --version) to $target"
fi
case ":${PATH}:" in
  *":${bindir}:"*) ;;
  *) echo "interop: note: $bindir is not on your PATH; run $target, or add it: export PATH=\"$bindir:\$PATH\"" ;;
esac
