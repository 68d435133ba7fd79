#!/bin/bash
# Issue #11's loop on the demo stack: edit the app -> `drover build` -> `drover deploy` ->
# the new version served, with the base cached; prints each step's time and share.
#
#   bash benches/edit_deploy_loop.sh [RUNS]        (default 3 runs)
#
# DROVER=BIN picks the binary (default target/debug/drover); DROVER_LOOP_ROOT=DIR keeps the
# copy of config/ and assets/demo/ and its state between calls (default: a temporary
# directory, removed at the end). The first call on an empty state builds the base cold
# (Debian mirror, 30-90 s, not timed); then one warm-up build + deploy (not timed: the
# agent starts, and a layered deploy caches the base layer), then RUNS timed loops.
# Needs root, bubblewrap, curl and python3 (as `.ci/setup` installs).
set -euo pipefail
RUNS=${1:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DROVER:-$REPO/target/debug/drover}
if [ -n "${DROVER_LOOP_ROOT:-}" ]; then
    ROOT=$DROVER_LOOP_ROOT
else
    ROOT=$(mktemp -d)
    trap 'rm -rf "$ROOT"' EXIT
fi
D() { "$BIN" --config "$ROOT/config" --state "$ROOT/state" "$@"; }
now() { date +%s.%N; }
if [ ! -d "$ROOT/config" ]; then
    mkdir -p "$ROOT/assets/demo"
    cp -a "$REPO/config" "$ROOT/config"
    cp -a "$REPO/assets/demo/hello" "$ROOT/assets/demo/hello"
    rm -f "$ROOT/config/stacks/hello.lock"
fi
trap 'D agent stop >/dev/null 2>&1 || true; [ -n "${DROVER_LOOP_ROOT:-}" ] || rm -rf "$ROOT"' EXIT
echo "warm-up: build + deploy (a cold base on an empty state)" >&2
echo "0.0.$(date +%s)" > "$ROOT/assets/demo/hello/VERSION"
D build hello --json > "$ROOT/build.json" 2>/dev/null
D deploy hello --json > "$ROOT/deploy.json" 2>/dev/null
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["route_port"])' "$ROOT/deploy.json")
for i in $(seq 1 "$RUNS"); do
    V="9.$i.$(date +%s%N)"
    t0=$(now)
    echo "$V" > "$ROOT/assets/demo/hello/VERSION"
    t1=$(now)
    D build hello --json > "$ROOT/build.json" 2>/dev/null
    t2=$(now)
    D deploy hello --json > "$ROOT/deploy.json" 2>/dev/null
    t3=$(now)
    until curl -fs "localhost:$PORT/" | grep -q "v$V"; do sleep 0.005; done
    t4=$(now)
    python3 - "$ROOT" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import json, sys
root, t = sys.argv[1], list(map(float, sys.argv[2:7]))
b = json.load(open(root + "/build.json"))
d = json.load(open(root + "/deploy.json"))
total = t[4] - t[0]
steps = [("edit", t[1] - t[0]), ("build", t[2] - t[1]), ("deploy", t[3] - t[2]), ("served", t[4] - t[3])]
line = ", ".join(f"{n} {s:.2f} s ({100 * s / total:.0f} %)" for n, s in steps)
unpack = d.get("unpack_ms")
how = "" if unpack is None else (f"; unpack {unpack:.1f} ms, {d['layers_unpacked']} layer(s) "
                                 f"unpacked, {d['layers_cached']} cached")
print(f"total {total:.2f} s: {line} (base cached: {b['base_cached']}{how})")
PY
done
