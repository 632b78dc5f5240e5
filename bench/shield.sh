#!/usr/bin/env bash
# The shield's costs, on this machine:
# - CPU per request: proxied with the shield judging every request, proxied with the shield
#   off, answered 429 by a rate limit, answered with the challenge page, and CPU per
#   connection closed on accept (blocked prefix), each with wrk -t1 -c64, holdfast --workers 1;
# - memory: one million distinct source addresses (crates/gateway/src/shield/memory.rs).
# - shoppers behind shared addresses beside the flood: the drills carrier-nat-crowd and payback.
# Usage: bench/shield.sh   (ROUNDS, DURATION, CONNS as in bench/lib.sh)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup
start_origin "$ORIGIN"

BROWSER=(-H 'Host: bench.local' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
  -H 'Accept: text/html' -H 'Accept-Language: en' -H 'Accept-Encoding: identity')

# Loopback is exempt by default (the allow list's default): these configs allow another
# network so that wrk on 127.0.0.1 is judged like any client. judged [RATE_LINES]: such a
# config whose limits wrk never reaches, unless RATE_LINES ([shield.rate] keys) say so.
NO_LIMIT='{ rate = 1000000, burst = 1000000 }'
judged() {
  local rate=${1:-"per_address = $NO_LIMIT"}
  printf '[shield]\nallow = ["192.0.2.1/32"]\n[shield.connections]\nnew_per_second = %s\n' "$NO_LIMIT"
  printf '[shield.rate]\n%s\nper_prefix = %s\n' "$rate" "$NO_LIMIT"
  # wrk is one returning visitor (the cookie below): its own limit is not what is measured.
  printf '[shield.visitors]\nper_visitor = %s\n' "$NO_LIMIT"
}
declare -A SHIELD=(
  [proxied]=$(judged)
  [shield-off]='[shield]
enabled = false'
  [rate-limited]=$(judged 'per_address = { rate = 1, burst = 1 }')
  [challenged]="$(judged)
[shield.challenge]
mode = \"on\""
  [blocked]='[shield]
block = ["127.0.0.1/32"]'
)
INSTANCES=(proxied shield-off rate-limited challenged blocked)
# "proxied-new-conn": the proxied instance, a new connection per request (as a blocked
# client's connections are), for comparing the blocked case like for like.
ORDER=(proxied proxied-new-conn shield-off rate-limited challenged blocked)

declare -A PORT PID
i=0
for name in "${INSTANCES[@]}"; do
  port=$((P_HOLDFAST + 10 + i)); admin=$((P_HOLDFAST + 30 + i)); i=$((i + 1))
  { holdfast_config "$port" "$admin" "$ORIGIN" false; echo "${SHIELD[$name]}"; } > "$WORK/$name.toml"
  RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/$name.toml" & PIDS+=($!)
  PORT[$name]=$port; PID[$name]=$!
done
PORT[proxied-new-conn]=${PORT[proxied]}; PID[proxied-new-conn]=${PID[proxied]}
wait_serving "$ORIGIN" "${PORT[proxied]}" "${PORT[shield-off]}"
sleep 0.5
# A returning browser: it sends back the visitor cookie holdfast gave it on its first visit.
VISITOR=$(curl -fsi "${BROWSER[@]}" "http://127.0.0.1:${PORT[proxied]}/" | tr -d '\r' | awk -F'[ ;]' 'tolower($1) == "set-cookie:" {print $2}')
[ -n "$VISITOR" ] || { echo "no visitor cookie from holdfast" >&2; exit 1; }
BROWSER+=(-H "Cookie: $VISITOR")

declare -A COST RATE
echo "shield cost: wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  for name in "${ORDER[@]}"; do
    pid=${PID[$name]}
    before=$(cpu_ticks "$pid")
    extra=(); [ "$name" = proxied-new-conn ] && extra=(-H 'Connection: close')
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "${BROWSER[@]}" "${extra[@]}" "http://127.0.0.1:${PORT[$name]}/" 2>&1)
    after=$(cpu_ticks "$pid")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    # Connections closed without an answer: wrk's socket errors (connect, read, write).
    closed=$(echo "$out" | awk -F'[ ,]+' '/Socket errors/ {print $5 + $7 + $9}')
    n=$reqs; unit=req
    if [ "$name" = blocked ]; then n=${closed:-0}; unit=conn; fi
    COST[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="$n" 'BEGIN { if (r > 0) printf "%.1f", d / t * 1e6 / r; else print "n/a" }')
    RATE[$name,$round]=$(awk -v r="$n" -v s="$DURATION" 'BEGIN { printf "%.0f", r / s }')
    printf "  round %d %-13s %9s %s/s  cpu %6s us/%s\n" "$round" "$name" "${RATE[$name,$round]}" "$unit" "${COST[$name,$round]}" "$unit"
  done
done

echo
printf "%-13s %12s %14s %12s\n" case "per second" "cpu us each" "vs proxied"
declare -A M
for name in "${ORDER[@]}"; do
  c=(); r=()
  for round in $(seq 1 "$ROUNDS"); do c+=("${COST[$name,$round]}"); r+=("${RATE[$name,$round]}"); done
  M[$name]=$(median "${c[@]}")
  printf "%-13s %12s %14s %12s\n" "$name" "$(median "${r[@]}")" "${M[$name]}" "$(ratio "${M[$name]}" "${M[proxied]}")x"
done
echo "(blocked is per connection closed on accept; proxied-new-conn per request on its own connection;"
echo " the others per request on keep-alive connections)"

echo
echo "memory for one million source addresses:"
cargo test --release -q -p holdfast-gateway --lib shield::memory -- --ignored --nocapture 2>&1 | grep addresses:

# Shoppers behind shared addresses beside the flood: two drills with the release build, each
# 60 s on the demo config: `carrier-nat-crowd` (30, then 300 shoppers behind 3 addresses)
# and `payback` (a LOIC flood from 3,000 addresses at 10,000 req/s). Printed: the shoppers'
# success and what the shield refused them, the flood's requests that reached an origin,
# and whether holdfast named the incidents right.
echo
echo "shared addresses and the flood (holdfast drill, 60 s each, holdfast only):"
"$HOLDFAST" drill --scenario carrier-nat-crowd,payback --against none --report "$WORK/drill" > "$WORK/drill.log" 2>&1 || true
python3 - "$WORK/drill" <<'PY'
import json, sys
for name in ("carrier-nat-crowd", "payback"):
    try:
        run = json.load(open(f"{sys.argv[1]}/{name}/report.json"))["runs"][0]
    except (OSError, KeyError, IndexError, ValueError) as e:
        print(f"  {name}: no report ({e})")
        continue
    a = run["summary"]["all"]
    sent, leaked = run.get("flood_sent") or 0, run.get("flood_reached_origins") or 0
    leak = f"; flood {leaked} of {sent} reached origins ({100 * leaked / sent:.2f}%)" if sent else ""
    right = run.get("verdicts", {}).get("passed")
    print(f"  {name:18} shoppers' success {100 * a['success_rate']:.2f}% of {a['requests']}, refused by the shield "
          f"{a['rejected']}, p99 {a['p99_ms']:.1f} ms{leak}; verdicts {'right' if right else 'WRONG'}")
PY
