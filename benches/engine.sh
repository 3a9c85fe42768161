#!/usr/bin/env bash
# Runs the engine-against-a-null-peer bench RUNS times (default 3) and prints the
# Markdown results table of benches/ENGINE.md: per benchmark the median over the
# runs of criterion's median, and ours/rumqttc per run and its median.
#   bash benches/engine.sh 3
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
log="$(mktemp)"
for i in $(seq "$runs"); do
  cargo bench -q -p mqtt-benches --bench engine >/dev/null 2>&1
  python3 - "$log" <<'PY'
import json, pathlib, sys
root = pathlib.Path("target/criterion")
row = {}
for group in sorted(root.glob("[1-4]_*_v*")):
    for bench in group.iterdir():
        est = bench / "new" / "estimates.json"
        if est.exists():
            row[f"{group.name}/{bench.name}"] = json.loads(est.read_text())["median"]["point_estimate"]
open(sys.argv[1], "a").write(json.dumps(row) + "\n")
PY
  echo "run $i/$runs done" >&2
done
echo "# Engine against a null peer: results"
echo
echo "Produced by \`bash benches/engine.sh $runs\` at commit \`$(git rev-parse --short=12 HEAD)\` (work tree $( [ -z "$(git status --porcelain --untracked-files=no)" ] && echo clean || echo 'MODIFIED (not a clean commit)')), $(date -u '+%Y-%m-%d %H:%M UTC'); median of $runs runs."
echo
python3 - "$log" "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
names = sorted(runs[0])
def rate(ns): return 100 / (ns * 1e-9)
def fmt(r): return f"{r/1e6:.2f} M"
print(f"| benchmark | ours msgs/s | ours ns/msg | rumqttc msgs/s | rumqttc ns/msg | ours/rumqttc (median) | per run |")
print("|---|---:|---:|---:|---:|---:|---|")
for name in names:
    group, who = name.split("/")
    if not who.startswith("ours"):
        continue
    ours = statistics.median(r[name] for r in runs)
    peer = f"{group}/{who.replace('ours', 'rumqttc')}"
    if peer in runs[0]:
        theirs = statistics.median(r[peer] for r in runs)
        ratios = [r[peer] / r[name] for r in runs]
        print(f"| `{name}` | {fmt(rate(ours))} | {ours/100:.0f} | {fmt(rate(theirs))} | {theirs/100:.0f} | **{statistics.median(ratios):.2f}×** | {' '.join(f'{x:.2f}' for x in ratios)} |")
    else:
        print(f"| `{name}` | {fmt(rate(ours))} | {ours/100:.0f} | — | — | — | — |")
PY
rm -f "$log"
