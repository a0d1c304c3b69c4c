#!/bin/sh
# The system packages the test suite needs on Debian: venv for python3, chromium with its
# driver (the admin web view's browser test) and a Japanese font (its pages and stats --plot).
# Installs only what is missing; uses sudo only when not root.
set -eu
missing=""
python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
fc-list :lang=ja 2>/dev/null | grep -q . || missing="$missing fonts-ipafont-gothic fontconfig"
[ -z "$missing" ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
