#!/usr/bin/env bash
# HTTP/2 A/B: two builds of holdfast (OLD and NEW) and HAProxy side by side against one nginx
# origin, h2load -c32 -m10 on h2c and over TLS, interleaved rounds. Prints req/s, CPU µs
# per request and the user part of it (from /proc), for each run.
#
# Usage: OLD=/path/to/holdfast-before NEW=/path/to/holdfast-after bench/h2_ab.sh
#        (R=3 rounds of D=6 seconds by default)
cd "$(dirname "$0")/.."
BASE_PORT=${BASE_PORT:-19180}
source bench/lib.sh
ORIGIN_TLS=0
: "${OLD:?OLD=path of the build before}" "${NEW:?NEW=path of the build after}"
HOLDFAST_BIN=$NEW
setup
R=${R:-3}; D=${D:-6}
E=$WORK/edge; mkdir -p $E
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench.local" -addext "subjectAltName=DNS:bench.local,IP:127.0.0.1" -keyout "$E/edge.key" -out "$E/edge.pem" 2>/dev/null
cat "$E/edge.pem" "$E/edge.key" > "$E/combined.pem"
start_origin "$ORIGIN"
start_haproxy_h2 $((BASE_PORT+12)) $((BASE_PORT+13)) "$E/combined.pem"; HA=$HAPROXY_PID
start_hf() { # BIN H2C TLS ADMIN
  holdfast_config "$2" "$4" "$ORIGIN" false \
  | sed "s|^http = .*|http = [\"127.0.0.1:$2\"]\nhttps = [\"127.0.0.1:$3\"]|" \
  | sed "s|^hosts = \(.*\)|hosts = \1\ntls = { cert = \"$E/edge.pem\", key = \"$E/edge.key\" }|" > "$WORK/hf$2.toml"
  RUST_LOG=error "$1" run --workers 1 --config "$WORK/hf$2.toml" & PIDS+=($!)
}
start_hf "$OLD" $((BASE_PORT+20)) $((BASE_PORT+21)) $((BASE_PORT+22)); HO=$!
start_hf "$NEW" $((BASE_PORT+30)) $((BASE_PORT+31)) $((BASE_PORT+32)); HN=$!
wait_serving "$ORIGIN" $((BASE_PORT+20)) $((BASE_PORT+30))
one() { # NAME PID URL
  local b a out n bu au
  b=$(cpu_ticks "$2"); bu=$(user_ticks "$2"); out=$(h2load -c32 -m10 -D "$D" "$3" 2>&1); a=$(cpu_ticks "$2"); au=$(user_ticks "$2")
  n=$(echo "$out" | awk '/^requests:/ {print $8}')
  local rps=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
  local cpu=$(awk -v d=$((a-b)) -v t=$TICK -v n=$n 'BEGIN{printf "%.1f", d/t*1e6/n}')
  local fail=$(echo "$out" | awk '/^requests:/ {print $10}')
  local usr=$(awk -v d=$((au-bu)) -v t=$TICK -v n=$n 'BEGIN{printf "%.1f", d/t*1e6/n}')
  printf "  %-14s %10s req/s  %6s us/req (user %s)  failed %s\n" "$1" "$rps" "$cpu" "$usr" "$fail"
}
for r in $(seq 1 $R); do
  echo "round $r"
  one haproxy-h2c $HA http://127.0.0.1:$((BASE_PORT+13))/
  one old-h2c $HO http://127.0.0.1:$((BASE_PORT+20))/
  one new-h2c $HN http://127.0.0.1:$((BASE_PORT+30))/
  one haproxy-tls $HA https://127.0.0.1:$((BASE_PORT+12))/
  one old-tls $HO https://127.0.0.1:$((BASE_PORT+21))/
  one new-tls $HN https://127.0.0.1:$((BASE_PORT+31))/
done
