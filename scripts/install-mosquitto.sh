#!/usr/bin/env bash
# Makes the Debian package `mosquitto` available (tests, benches and the demo start
# their own brokers on 127.0.0.1). Does nothing when it is installed already.
set -euo pipefail
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] && [ -x "$(command -v apt-get)" ]; then
  echo "installing mosquitto" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi
