#!/usr/bin/env bash
# Makes the Debian packages the tests need available: `mosquitto` (tests, benches
# and the demo start their own brokers on 127.0.0.1; `mosquitto_passwd` makes
# password files) and `openssl` (the TLS tests convert generated keys to PKCS#1,
# SEC1 and encrypted PKCS#8 with it). Does nothing when they are installed already.
set -euo pipefail
missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then missing+=(mosquitto); fi
if ! command -v openssl >/dev/null 2>&1; then missing+=(openssl); fi
if [ "${#missing[@]}" -gt 0 ] && [ -x "$(command -v apt-get)" ]; then
  echo "installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
