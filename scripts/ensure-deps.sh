#!/usr/bin/env bash
# Installs what swift-rcu's stress tool and tests need when it is missing:
# liburcu-dev (the reference oracle, linked by rcu-stress only).
set -euo pipefail
if pkg-config --exists liburcu-memb liburcu-cds 2>/dev/null; then
    exit 0
fi
echo "swift-rcu: liburcu-dev not found by pkg-config; installing it" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq liburcu-dev pkg-config >/dev/null
pkg-config --exists liburcu-memb liburcu-cds
