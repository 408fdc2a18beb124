#!/usr/bin/env bash
# Installs everything sipbridge needs to build, run and test, on Debian 12.
# Idempotent: installs only what is missing, so `make run` / `make test` can
# call it every time. Uses sudo when not root.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  # build
  pkg-config libssl-dev libopus-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # media runtime: webrtcbin, libnice ICE, Opus, G.722 (libav), tools for test peers
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-nice gstreamer1.0-libav gstreamer1.0-tools
  # real peers for the end-to-end tests
  sip-tester dnsmasq-base baresip-core linphone-cli kamailio kamailio-websocket-modules kamailio-tls-modules chromium
  # WebRTC through NAT and TURN (net_turn): a second browser, the TURN server
  firefox-esr coturn
  # test plumbing
  util-linux iproute2 iptables sox python3 python3-venv openssl
  # operations: promtool (checks /metrics), HAProxy (gateways behind it),
  # and what the .deb check uses (objcopy, systemd-analyze, adduser)
  prometheus haproxy binutils systemd adduser
)
# Node.js: Debian's nodejs+npm, unless a Node with npm is already installed
# (e.g. from NodeSource, whose nodejs package conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(nodejs npm); fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "install-deps: no Rust toolchain found. Install one with rustup (Rust 1.85 or newer;" >&2
  echo "              Debian 12's own rustc is too old), then run this again." >&2
  exit 1
fi
# `make lint` needs rustfmt and clippy (a "minimal" rustup profile lacks them).
export PATH="$HOME/.cargo/bin:$PATH"
if command -v rustup >/dev/null 2>&1 && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# `make bench` also compares against these (--bench): rtpengine (media
# relay) and the Janus gateway (its SIP plugin, WebRTC <-> SIP passthrough).
if [ "${1:-}" = "--bench" ]; then APT_PACKAGES+=(rtpengine-daemon janus); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt installing: ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Kamailio's Debian package enables a system service; tests start their own
# instance in the foreground, so make sure the packaged one never holds 5060.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kamailio 2>/dev/null; then
  $SUDO systemctl stop kamailio || true
fi
# Prometheus (installed for promtool) and HAProxy: tests start their own.
for service in prometheus haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    $SUDO systemctl stop "$service" || true
  fi
done
# Likewise Janus (--bench): the bench starts its own, with its own config, in
# a private network namespace; the packaged service is not wanted running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet janus 2>/dev/null; then
  $SUDO systemctl stop janus || true
fi

# npm packages: the node shim and the browser/SIP.js test drivers.
for dir in node-shim tests; do
  if [ -f "$here/$dir/package.json" ]; then
    if [ ! -d "$here/$dir/node_modules" ] || [ "$here/$dir/package.json" -nt "$here/$dir/node_modules" ]; then
      echo "install-deps: npm install in $dir" >&2
      (cd "$here/$dir" && npm install --no-audit --no-fund --loglevel=error)
      touch "$here/$dir/node_modules"
    fi
  fi
done

# Python peer (aiortc) in a project-local venv, so nothing system-wide changes.
if [ -f "$here/tests/requirements.txt" ]; then
  venv="$here/target/pyenv"
  if [ ! -x "$venv/bin/python" ] || [ "$here/tests/requirements.txt" -nt "$venv/.installed" ]; then
    echo "install-deps: python venv for aiortc in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/tests/requirements.txt"
    touch "$venv/.installed"
  fi
fi
echo "install-deps: all present" >&2
