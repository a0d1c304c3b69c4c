#!/bin/sh
# The system packages the test suite needs on Debian: venv for python3, chromium with its
# driver (the admin web view's browser test), a Japanese font (its pages and stats --plot) and
# poppler-utils (pdftoppm, pdftotext, pdffonts: the checklist PDF tests).
# Installs only what is missing; uses sudo only when not root.
set -eu
missing=""
python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
fc-list :lang=ja 2>/dev/null | grep -q . || missing="$missing fonts-ipafont-gothic fontconfig"
command -v pdftoppm >/dev/null 2>&1 || missing="$missing poppler-utils"
[ -z "$missing" ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
