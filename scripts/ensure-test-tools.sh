#!/usr/bin/env bash
# The tools the tests drive from Debian's packages: Chromium at /usr/bin/chromium for the browser
# tests (Playwright downloads no browser here) and nginx at /usr/sbin/nginx for the gateway tests.
# Install what is missing with apt; fail loudly when that is not possible.
set -euo pipefail
CHROMIUM=${CE_CHROMIUM:-/usr/bin/chromium}
NGINX=${CE_NGINX:-/usr/sbin/nginx}
missing=()
[ -x "$CHROMIUM" ] || missing+=("chromium:$CHROMIUM")
[ -x "$NGINX" ] || missing+=("nginx-light:$NGINX")
[ ${#missing[@]} -eq 0 ] && exit 0
packages=()
for m in "${missing[@]}"; do packages+=("${m%%:*}"); done
echo "ensure-test-tools: missing ${missing[*]}; installing Debian's ${packages[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
  echo "ensure-test-tools: FAILED: not root and no sudo; install them yourself: apt-get install ${packages[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-tools: FAILED: no apt-get on this machine; install ${packages[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"; }; then
  echo "ensure-test-tools: FAILED: apt-get could not install ${packages[*]}; their tests cannot run" >&2
  exit 1
fi
for m in "${missing[@]}"; do
  if [ ! -x "${m#*:}" ]; then
    echo "ensure-test-tools: FAILED: ${m%%:*} installed but ${m#*:} is still missing" >&2
    exit 1
  fi
done
echo "ensure-test-tools: installed ${packages[*]}" >&2
