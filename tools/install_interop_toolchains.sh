#!/usr/bin/env bash
# Install the toolchains for plait's Yamux interop peers (spec: yamux.md §6).
#
#   - Go 1.19 and Debian's copy of hashicorp/yamux (apt, needs root; skipped when
#     both packages are already installed);
#   - the npm dependencies of the Node echo peer (`npm ci` in tests/interop/node,
#     skipped when node_modules already matches package-lock.json).
#
# Idempotent; exits non-zero on the first failure. The peers themselves are built
# on first use by tests/interop/conftest.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

apt_packages=(golang-go golang-github-hashicorp-yamux-dev)

missing=()
for pkg in "${apt_packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "install_interop_toolchains: apt-get install ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_packages[@]}"
else
    echo "install_interop_toolchains: ${apt_packages[*]} already installed"
fi

command -v go >/dev/null || { echo "install_interop_toolchains: go not on PATH" >&2; exit 1; }
test -f /usr/share/gocode/src/github.com/hashicorp/yamux/session.go || {
    echo "install_interop_toolchains: hashicorp/yamux source missing under /usr/share/gocode" >&2
    exit 1
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    # CI images ship Node 20; a bare Debian machine gets Debian's nodejs and npm.
    echo "install_interop_toolchains: apt-get install nodejs npm"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi
command -v node >/dev/null || { echo "install_interop_toolchains: node not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "install_interop_toolchains: npm not on PATH" >&2; exit 1; }

node_dir="$repo/tests/interop/node"
lock="$node_dir/package-lock.json"
installed_lock="$node_dir/node_modules/.package-lock.json"
stamp="$node_dir/node_modules/.plait-npm-ci-stamp"
if [[ -f "$stamp" && -f "$installed_lock" ]] && cmp -s "$lock" "$stamp"; then
    echo "install_interop_toolchains: node_modules up to date"
else
    echo "install_interop_toolchains: npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund)
    cp "$lock" "$stamp"
fi

echo "install_interop_toolchains: go $(go version | awk '{print $3}'), node $(node --version)"
