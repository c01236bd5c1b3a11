#!/bin/sh
# Runs the `instructions` benchmark (callgrind through gungraun), then prints instructions per
# request for each case and the layered/bare ratios. Extra arguments go to `cargo bench`.
#
#   bench/instructions-ratio.sh
#
# Needs valgrind and `cargo install gungraun-runner --version 0.20.0 --locked`.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# One codegen unit: with several, how LLVM splits the bench crate (which shifts whenever the
# library changes) moves even bare axum's count by about 1 %; with one, the bare cases count the
# same before and after a library change. Its own target directory, so this build does not
# displace the other benchmarks' release build.
export CARGO_PROFILE_BENCH_CODEGEN_UNITS=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/instructions"

if ! out=$(cargo bench -p x402-lightning-bench --bench instructions "$@" 2>&1); then
    printf '%s\n' "$out"
    exit 1
fi
printf '%s\n' "$out"

printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | awk '
    # "instructions::router::one_request free_bare:(...)" then "  Instructions:  7816|7816 ..."
    $1 ~ /::one_request$/ { split($2, id, ":"); name = id[1] }
    $1 == "Instructions:" && name != "" { split($2, value, "|"); ir[name] = value[1]; name = "" }
    END {
        n = split("free_bare free_layered priced_bare priced_layered free_noop_layer free_outer_layer", order, " ")
        for (i = 1; i <= n; i++) {
            if (!(order[i] in ir)) { print "missing case " order[i] > "/dev/stderr"; exit 1 }
        }
        print ""
        print "Instructions per request (callgrind Ir, one request through the Router):"
        printf "  %-34s %-20s %10d\n", "bare axum", "GET /health", ir["free_bare"]
        printf "  %-34s %-20s %10d\n", "Router.layer(X402Layer)", "GET /health (free)", ir["free_layered"]
        printf "  %-34s %-20s %10d\n", "bare axum", "GET /weather (200)", ir["priced_bare"]
        printf "  %-34s %-20s %10d\n", "Router.layer(X402Layer)", "GET /weather (402)", ir["priced_layered"]
        printf "  %-34s %-20s %10d\n", "Router.layer(no-op tower layer)", "GET /health", ir["free_noop_layer"]
        printf "  %-34s %-20s %10d\n", "X402Layer around the whole Router", "GET /health (free)", ir["free_outer_layer"]
        free = ir["free_layered"] / ir["free_bare"]
        printf "free route: Router.layer(X402Layer) / bare axum       %6.3f  (target <= 1.02: %s)\n", free, (free <= 1.02 ? "met" : "MISSED")
        printf "402 route:  Router.layer(X402Layer) 402 / bare 200    %6.1f  (informational)\n", ir["priced_layered"] / ir["priced_bare"]
        printf "reference:  Router.layer(no-op layer) / bare axum     %6.3f  (what Router::layer itself costs)\n", ir["free_noop_layer"] / ir["free_bare"]
        outer = ir["free_outer_layer"] / ir["free_bare"]
        printf "free route: X402Layer around the Router / bare axum   %6.3f  (target <= 1.02: %s)\n", outer, (outer <= 1.02 ? "met" : "MISSED")
        printf "reference:  Router.layer(X402Layer) / no-op layer     %6.3f  (the layer beyond what axum charges any layer)\n", ir["free_layered"] / ir["free_noop_layer"]
    }'
