#!/usr/bin/env bash
# The main job: the client publishing and receiving at QoS 0, 1 and 2 (MQTT 5, then
# 3.1.1) with manual acks, through a mosquitto started here on 127.0.0.1 on a free
# port, stopped at the end. Installs mosquitto when missing (Debian), like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-mosquitto.sh
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"

cargo build -q -p mqtt-client --example pubsub

dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/mosquitto.conf" <<CONF
user root
per_listener_settings false
allow_anonymous true
listener $port 127.0.0.1
log_dest file $dir/mosquitto.log
CONF
"$MOSQUITTO" -c "$dir/mosquitto.conf" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

echo "== MQTT 5 (mosquitto on 127.0.0.1:$port)"
cargo run -q -p mqtt-client --example pubsub -- "127.0.0.1:$port" 3
echo "== MQTT 3.1.1"
cargo run -q -p mqtt-client --example pubsub -- "127.0.0.1:$port" --v311 2
