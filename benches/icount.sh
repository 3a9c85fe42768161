#!/usr/bin/env bash
# Instructions per packet (callgrind), ours against rumqttc and the framing-only limit:
# deterministic, so valid on a noisy shared machine. Prints Markdown (report.py folds
# benches/ICOUNT.md into RESULTS.md).
#
#   bash benches/icount.sh > benches/ICOUNT.md     (needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p mqtt-benches --example icount
bin=target/release/examples/icount

# Instructions per packet: (count at 30 passes - count at 10 passes) / (20 * 1000).
per_packet() {
  local a b
  a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 10 2>&1 | awk '/Collected :/{print $4}')
  b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 30 2>&1 | awk '/Collected :/{print $4}')
  python3 -c "print(round(($b - $a) / 20000))"
}

cat <<'EOT'
Reproduce: `bash benches/icount.sh > benches/ICOUNT.md` (valgrind's callgrind; the
`icount` example of `mqtt-benches` runs the same fixtures as the criterion bench).
Instructions executed per packet, decode including the packet's drop, setup
subtracted by differencing two runs. Instructions are not time: an atomic reference
count update or a cache miss costs more than an add, so read these beside the
criterion medians above, not instead of them. They do not move with machine load.

EOT
echo "| case | op | mqtt-codec | rumqttc | framing-only | rumqttc / mqtt-codec |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for c in small_v311 small_v5 kib_v311 kib_v5 props_v5 connect_v5 sub_v311 sub_v5; do
  for op in decode encode; do
    ours=$(per_packet "$c" ours "$op")
    theirs=$(per_packet "$c" rumqttc "$op")
    if [ "$op" = decode ]; then framing=$(per_packet "$c" framing decode); else framing="-"; fi
    ratio=$(python3 -c "print(f'{$theirs / $ours:.2f}x')")
    echo "| $c | $op | $ours | $theirs | $framing | $ratio |"
  done
done
