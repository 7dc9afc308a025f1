#!/usr/bin/env bash
# Installs the Debian packages troupe's build and tests need, when missing.
# Run as root, or as a user with sudo.
set -euo pipefail

packages=(build-essential cmake pkg-config libck-dev libjemalloc-dev
          libcmocka-dev clang-format)
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
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
