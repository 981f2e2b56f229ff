#!/usr/bin/env bash
# The cost of a durable store, measured side by side in one run: chat-load against the
# server with --store memory and with --store sqlite:..., rounds alternating, each on a
# fresh store in a temporary directory. Optionally also against another server binary
# (e.g. a build of an older commit) with memory, as a baseline.
#
#   scripts/bench-store.sh [ROUNDS] [BASELINE_BINARY]
#
# Prints one line per round and scenario, then the medians and their ratios. Loopback
# only; every chat-load run is bounded (--duration, --warmup, --drain).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
baseline=${2:-}
cargo build --release -q -p chat-mcp-http -p tests --bins
server=target/release/chat-mcp-http
load=target/release/chat-load
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timing=(--duration 8s --warmup 2s --drain 3s --floor skip --json)

# run LABEL BINARY STORE SCENARIO-ARGS...: prints "label scenario msgs/s p50 p99 lost dup"
run() {
    local label=$1 binary=$2 store=$3 name=$4
    shift 4
    local args=()
    if [[ $store == sqlite ]]; then
        rm -f "$tmp"/chat.db*
        args=(--server-arg=--store "--server-arg=sqlite:$tmp/chat.db")
    fi
    "$load" "$@" "${timing[@]}" --spawn-server "$binary" "${args[@]}" 2>/dev/null |
        python3 -c '
import json, sys
label, name = sys.argv[1], sys.argv[2]
run = json.load(sys.stdin)["runs"][-1]
lat = run.get("latency_ms") or run.get("open_ms") or {}
rate, p50, p99 = run.get("msgs_per_s", 0), lat.get("p50", 0), lat.get("p99", 0)
print("%-10s %-10s %9.0f %8.2f %8.2f %5d %5d" % (label, name, rate, p50, p99, run.get("lost", 0), run.get("duplicated", 0)))
' "$label" "$name"
}

targets=("memory $server memory" "sqlite $server sqlite")
[[ -n $baseline ]] && targets=("baseline $baseline memory" "${targets[@]}")

printf '%-10s %-10s %9s %8s %8s %5s %5s\n' target scenario msgs/s p50_ms p99_ms lost dup | tee "$tmp/results"
for round in $(seq 1 "$rounds"); do
    for target in "${targets[@]}"; do
        read -r label binary store <<<"$target"
        run "$label" "$binary" "$store" closed relay --pairs 100 | tee -a "$tmp/results"
        run "$label" "$binary" "$store" open-5000 relay --pairs 1000 --rate 5000 | tee -a "$tmp/results"
    done
done

echo
echo "medians over $rounds rounds (ratios against memory):"
python3 - "$tmp/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:] if l.strip()]
by = {}
for label, name, rate, p50, p99, lost, dup in rows:
    by.setdefault((label, name), []).append((float(rate), float(p50), float(p99), int(lost), int(dup)))
for name in ["closed", "open-5000"]:
    base = by.get(("memory", name))
    if not base:
        continue
    m_rate = statistics.median(r[0] for r in base)
    m_p99 = statistics.median(r[2] for r in base)
    for label in ["baseline", "memory", "sqlite"]:
        runs = by.get((label, name))
        if not runs:
            continue
        rate = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        lost = sum(r[3] for r in runs)
        dup = sum(r[4] for r in runs)
        print(f"{name:10} {label:9} {rate:9.0f} msg/s ({rate / m_rate:4.2f}x memory)  p50 {p50:6.2f} ms  "
              f"p99 {p99:6.2f} ms ({p99 - m_p99:+5.2f} ms)  lost {lost} dup {dup}")
EOF
