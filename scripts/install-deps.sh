#!/usr/bin/env bash
# Installs the Debian packages troupe's build and tests need, when missing,
# and the npm package the inspection page's browser test drives chromium
# with (under tests/live/node_modules, git-ignored).
# Run as root, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

# libevent-dev: the I/O loops of io/ (sockets for actors) and the live
# inspection endpoint. jq, graphviz: its tests check
# the JSON and render the DOT. chromium, nodejs, npm: the page's browser
# test (tests/live/page_test.mjs). bc: scripts/systematic.sh's figures.
packages=(build-essential cmake pkg-config libck-dev libjemalloc-dev
          libcmocka-dev clang-format doxygen libevent-dev jq graphviz
          chromium bc)
# A node from elsewhere (it brings its own npm) is as good as Debian's.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done

install_page_test() {
    # playwright-core, pinned in tests/live/package.json.
    if [ ! -d tests/live/node_modules/playwright-core ]; then
        echo "installing playwright-core under tests/live"
        (cd tests/live && npm install --no-audit --no-fund --silent)
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    install_page_test
    exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
# Wait for another apt or dpkg (a machine still installing at boot)
# instead of failing at once: apt's lock timeout, and a few retries of the
# index update, whose lists lock the timeout does not cover everywhere.
lock=(-o DPkg::Lock::Timeout=600)
for try in 1 2 3 4 5 6; do
    if $sudo apt-get "${lock[@]}" update -qq; then
        break
    fi
    if [ "$try" -eq 6 ]; then
        echo "apt-get update failed" >&2
        exit 1
    fi
    sleep 20
done
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock[@]}" install -y -qq \
    "${missing[@]}"
install_page_test
