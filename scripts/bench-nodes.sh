#!/usr/bin/env bash
# How the chat scales over several nodes on one Redis: chat-load's relay scenario against
# one --store memory node, then 1, 2 and 3 nodes sharing a Redis store (sessions spread
# round-robin, so partners often sit on different nodes), and 2 nodes where only node 1
# has clients (node 2's CPU per message is then the pure cost of applying what is
# replicated). Each configuration runs closed loop (100 pairs, ping-pong) and open loop
# (--rate, a fixed offered load).
#
#   scripts/bench-nodes.sh [ROUNDS]          # default 1 round
#   RATE=3000 FSYNC="everysec always" DURATION=8s scripts/bench-nodes.sh 3
#
# It starts its own redis-server on a free loopback port in a temporary directory, with
# appendonly yes and appendfsync everysec (FSYNC="everysec always" adds a pass with
# appendfsync always), empties it (FLUSHALL) before every run, and stops everything it
# started on exit. Every chat-load run is bounded (--duration, --warmup, --drain) and
# uses loopback only. Prints one line per run, then the medians per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-1}
rate=${RATE:-5000}
duration=${DURATION:-8s}
fsyncs=${FSYNC:-everysec}
command -v redis-server >/dev/null || bash scripts/redis.sh install

cargo build --release -q -p chat-mcp-http -p tests --bin chat-mcp-http --bin chat-load
server=target/release/chat-mcp-http
load=target/release/chat-load
tmp=$(mktemp -d)
redis_pid=
cleanup() {
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_url=redis://127.0.0.1:$port

# redis_cmd WORD...: sends one command to the Redis, prints its first reply line.
redis_cmd() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf '%s\r\n' "$*" >&3
    local reply
    IFS= read -r -t 5 reply <&3 || reply=
    exec 3<&-
    printf '%s\n' "${reply%$'\r'}"
}

# start_redis FSYNC: (re)starts the Redis with appendfsync FSYNC.
start_redis() {
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp/redis" && mkdir -p "$tmp/redis"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/redis" --save '' \
        --appendonly yes --appendfsync "$1" >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
        [[ $(redis_cmd PING 2>/dev/null) == +PONG ]] && return
        sleep 0.05
    done
    echo "redis-server did not start:" >&2
    cat "$tmp/redis.log" >&2
    exit 1
}

timing=(--duration "$duration" --warmup 2s --drain 3s --floor skip --json --spawn-server "$server")

# run CONFIG SCENARIO-LABEL FSYNC CHAT-LOAD-ARGS...: one chat-load run, one result line:
# config fsync scenario msgs/s p50 p99 lost dup nodes_us node_us... redis_us total_us
run() {
    local config=$1 label=$2 fsync=$3
    shift 3
    local store=()
    case $config in
        memory) ;;
        redis-1) store=(--nodes 1) ;;
        redis-2) store=(--nodes 2) ;;
        redis-3) store=(--nodes 3) ;;
        redis-2-apply) store=(--nodes 2 --client-nodes 1) ;;
    esac
    if [[ $config != memory ]]; then
        [[ $(redis_cmd FLUSHALL) == +OK ]] || { echo "FLUSHALL failed" >&2; exit 1; }
        store+=(--redis-url "$redis_url" --redis-pid "$redis_pid")
    fi
    "$load" relay "$@" "${timing[@]}" "${store[@]}" 2>"$tmp/stderr" >"$tmp/out.json" || {
        echo "chat-load failed ($config $label):" >&2
        tail -20 "$tmp/stderr" >&2
    }
    python3 - "$config" "$fsync" "$label" "$tmp/out.json" <<'EOF'
import json, sys
config, fsync, label, path = sys.argv[1:5]
try:
    run = json.load(open(path))["runs"][-1]
except (ValueError, KeyError, IndexError):
    print("%-14s %-8s %-9s 0 0 0 -1 -1 - - - -" % (config, fsync, label))
    sys.exit()
lat = run.get("latency_ms") or {}
f = lambda v: "-" if v is None else "%.1f" % v
nodes = run.get("nodes") or []
per_node = ",".join(f(n.get("cpu_us_per_op")) for n in nodes) or f(run.get("target_cpu_us_per_op"))
redis = (run.get("redis") or {}).get("cpu_us_per_op")
total = run.get("system_cpu_us_per_op") or run.get("target_cpu_us_per_op")
print("%-14s %-8s %-9s %8.0f %8.3f %8.3f %4d %4d %8s %-20s %7s %8s" % (config, fsync, label,
      run.get("msgs_per_s", 0), lat.get("p50", 0), lat.get("p99", 0), run.get("lost", -1),
      run.get("duplicated", -1), f(run.get("target_cpu_us_per_op")), per_node, f(redis), f(total)))
EOF
}

configs=(memory redis-1 redis-2 redis-3 redis-2-apply)
echo "relay: closed loop 100 pairs, open loop 1000 pairs at $rate msg/s; $duration measured after 2s warm-up"
echo "redis-server on 127.0.0.1:$port in $tmp/redis: appendonly yes, appendfsync $fsyncs (one pass each)"
echo "nodes: default --node-heartbeat/--node-timeout; $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
echo "columns: CPU us per delivered message: nodes total, each node, redis, nodes+redis"
printf '%-14s %-8s %-9s %8s %8s %8s %4s %4s %8s %-20s %7s %8s\n' \
    config fsync scenario msgs/s p50_ms p99_ms lost dup nodes_us per_node_us redis_us total_us |
    tee "$tmp/results"
for fsync in $fsyncs; do
    start_redis "$fsync"
    for round in $(seq 1 "$rounds"); do
        for config in "${configs[@]}"; do
            # The memory node does not depend on Redis: measure it once per round.
            [[ $config == memory && $fsync != "${fsyncs%% *}" ]] && continue
            run "$config" closed "$fsync" --pairs 100 | tee -a "$tmp/results"
            run "$config" "open-$rate" "$fsync" --pairs 1000 --rate "$rate" | tee -a "$tmp/results"
        done
    done
done

echo
echo "medians over $rounds round(s); throughput as a multiple of the memory node:"
python3 - "$tmp/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:] if l.strip()]
by = {}
for config, fsync, label, rate, p50, p99, lost, dup, nodes_us, per_node, redis_us, total_us in rows:
    key = (config, "-" if config == "memory" else fsync, label)
    by.setdefault(key, []).append(dict(rate=float(rate), p50=float(p50), p99=float(p99), lost=int(lost),
                                       dup=int(dup), nodes=nodes_us, per=per_node, redis=redis_us, total=total_us))
def med(runs, k):
    return statistics.median(r[k] for r in runs)
def med_text(runs, k):
    vals = []
    for r in runs:
        try:
            vals.append(float(r[k]))
        except ValueError:
            pass
    return "%.1f" % statistics.median(vals) if vals else "-"
def med_per_node(runs):
    cols = [r["per"].split(",") for r in runs]
    out = []
    for i in range(max(len(c) for c in cols)):
        vals = []
        for c in cols:
            try:
                vals.append(float(c[i]))
            except (ValueError, IndexError):
                pass
        out.append("%.1f" % statistics.median(vals) if vals else "-")
    return "/".join(out)
print("%-14s %-8s %-9s %8s %6s %8s %8s %9s %-18s %8s %8s" % ("config", "fsync", "scenario", "msgs/s", "ratio",
      "p50_ms", "p99_ms", "lost/dup", "us/msg per node", "redis", "total"))
for label in sorted({k[2] for k in by}, key=lambda l: (l != "closed", l)):
    base = by.get(("memory", "-", label))
    base_rate = med(base, "rate") if base else None
    for key in sorted((k for k in by if k[2] == label), key=lambda k: (k[1] != "-", k[1], k[0])):
        runs = by[key]
        rate = med(runs, "rate")
        ratio = "%.2fx" % (rate / base_rate) if base_rate else "-"
        print("%-14s %-8s %-9s %8.0f %6s %8.3f %8.3f %9s %-18s %8s %8s" % (key[0], key[1], label, rate, ratio,
              med(runs, "p50"), med(runs, "p99"), "%d/%d" % (sum(r["lost"] for r in runs), sum(r["dup"] for r in runs)),
              med_per_node(runs), med_text(runs, "redis"), med_text(runs, "total")))
EOF
