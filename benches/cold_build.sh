#!/bin/bash
# Issue #11's goal "a cold build of the demo against raw mmdebstrap of the same package
# set, in one run: <= 1.10x". Each pair, in alternating order, on an empty state and an
# empty .deb cache (both download every .deb from the mirror):
#   drover:      `drover build hello` (lock, mmdebstrap, base layer, app, manifest, image);
#   mmdebstrap:  `mmdebstrap --variant=apt --include=PACKAGES bookworm DIR MIRROR`, the
#                demo's suite, mirror, variant and packages, as a directory.
# Prints each run, the medians and their ratio.
#
#   bash benches/cold_build.sh [PAIRS]        (default 3 pairs)
#
# DROVER=BIN picks the binary (default target/release/drover, else target/debug/drover).
# Needs root, mmdebstrap and the network to deb.debian.org (as `.ci/setup` installs).
set -euo pipefail
PAIRS=${1:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DROVER:-$REPO/target/release/drover}
[ -x "$BIN" ] || BIN=$REPO/target/debug/drover
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/assets/demo"
cp -a "$REPO/config" "$ROOT/config"
cp -a "$REPO/assets/demo/hello" "$ROOT/assets/demo/hello"
STACK=$ROOT/config/stacks/hello.toml
# The demo's package inputs, read from its stack file (one-line arrays and strings).
value() { sed -n "s/^$1 *= *//p" "$STACK" | head -1; }
PACKAGES=$(value packages | tr -d '[]" ' )
SUITE=$(value suite | tr -d '"')
MIRROR=$(value mirror | tr -d '"')
VARIANT=$(value variant | tr -d '"')
now() { date +%s.%N; }
drover_run() {
    rm -rf "$ROOT/state" "$ROOT/config/stacks/hello.lock"
    local t0; t0=$(now)
    "$BIN" --config "$ROOT/config" --state "$ROOT/state" build hello --json >"$ROOT/build.json" 2>"$ROOT/build.err"
    awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}'
}
mmdebstrap_run() {
    rm -rf "$ROOT/raw"
    local t0; t0=$(now)
    mmdebstrap --quiet --mode=root --variant="$VARIANT" --include="$PACKAGES" \
        --format=directory "$SUITE" "$ROOT/raw" "deb $MIRROR $SUITE main" >/dev/null 2>"$ROOT/mm.err"
    awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}'
}
echo "demo: $PACKAGES from $SUITE ($MIRROR), variant $VARIANT; $PAIRS pair(s), binary $BIN" >&2
D=(); M=()
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then
        d=$(drover_run); m=$(mmdebstrap_run)
    else
        m=$(mmdebstrap_run); d=$(drover_run)
    fi
    D+=("$d"); M+=("$m")
    printf 'pair %d: drover build %.1f s, mmdebstrap %.1f s, ratio %.2f\n' "$i" "$d" "$m" "$(awk -v a="$d" -v b="$m" 'BEGIN {print a / b}')"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
md=$(median "${D[@]}"); mm=$(median "${M[@]}")
printf 'median: drover build %.1f s, mmdebstrap %.1f s, ratio %.2f (goal <= 1.10); load %s\n' \
    "$md" "$mm" "$(awk -v a="$md" -v b="$mm" 'BEGIN {print a / b}')" "$(cut -d' ' -f1-3 /proc/loadavg)"
