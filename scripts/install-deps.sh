#!/usr/bin/env bash
# Installs the Debian packages troupe's build and tests need, when missing.
# Run as root, or as a user with sudo.
set -euo pipefail

packages=(build-essential cmake pkg-config libck-dev libjemalloc-dev
          libcmocka-dev libevent-dev clang-format)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
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
