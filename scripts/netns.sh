#!/usr/bin/env bash
# Runs a command inside a private network namespace with only loopback up, so
# end-to-end tests cannot reach (or be reached from) anything but 127.0.0.1
# and their ports cannot clash with services on the host.
set -euo pipefail
if [ "${SIPBRIDGE_NETNS:-}" = "inside" ]; then exec "$@"; fi
export SIPBRIDGE_NETNS=inside
if [ "$(id -u)" -eq 0 ]; then
  exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
else
  echo "netns: cannot create a network namespace here; running on the host's loopback" >&2
  exec "$@"
fi
