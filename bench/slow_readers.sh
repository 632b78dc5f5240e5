#!/usr/bin/env bash
# Slow readers, on this machine, side by side, loopback only; every process started here is
# stopped by its PID.
#
# Thirty shoppers (wrk -t1 -c30, HTTP/1.1, each 200 ms between its requests) fetch a
# cacheable page (800 KB, or PAGE_KB; max-age=1 and no validators, so every second the
# cache fetches it whole again) through each proxy's cache, first alone, then while an
# attacker holds four HTTP/2 connections whose streams have a window of 0 and are never
# read (h2load -w0, 50 new streams a second on each, up to 200 open). A cache whose fill
# runs at its first client's pace makes every client of the page wait for a stream that
# never reads; one that fills at the origin's pace (Varnish's model) does not. Printed: the
# shoppers' requests/s and p50/p99 alone and attacked, each proxy's peak memory while
# attacked, and for holdfast the most requests seen waiting for a fill.
#
# The peers: nginx (proxy_cache with proxy_cache_lock, the same collapsing of misses) and
# HAProxy (its cache), each on one worker/thread, with an HTTP/1.1 and an HTTP/2 (h2c)
# listener on one cache. BASELINE=/path/to/an/older/holdfast runs that build beside.
#
# Usage: bench/slow_readers.sh   (ROUNDS=3 DURATION=10 by default; PAGE_KB=800 the page's size)
cd "$(dirname "$0")/.."
source bench/lib.sh
CONNS=30
PAGE_KB=${PAGE_KB:-800}
# Shoppers, not a load test: each connection waits 200 ms between its requests (about 150
# requests a second together), so the attacker's streams lead some of the fills.
export PACE_MS=200
WRK_SCRIPT=bench/paced.lua
setup
command -v h2load >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
}

start_origin "$ORIGIN" 'location /page.html { etag off; if_modified_since off; add_header Cache-Control "public, max-age=1"; }'
head -c $((PAGE_KB * 1024)) /dev/zero | tr '\0' 'p' > "$WORK/www/page.html"

# Each proxy: an HTTP/1.1 port (the shoppers) and an HTTP/2 cleartext port (the attacker);
# holdfast serves both on one.
P_NGINX_H2=$((BASE_PORT + 11))
P_HAPROXY_H2=$((BASE_PORT + 12))

mkdir -p "$WORK/proxy/cache"
chmod 777 "$WORK/proxy/cache"
{ nginx_head "$WORK/proxy"; cat <<CONF; } > "$WORK/proxy/nginx.conf"
  proxy_cache_path $WORK/proxy/cache levels=1:2 keys_zone=hot:10m max_size=64m inactive=60m;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGINX;
    listen 127.0.0.1:$P_NGINX_H2 http2;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_cache hot;
      proxy_cache_lock on;
    }
  }
}
CONF
nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & PIDS+=($!)
NGINX_MASTER=$!

cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 60s
  http-reuse always
cache hot
  total-max-size 64
  max-object-size 1000000
  max-age 3600
frontend fe
  bind 127.0.0.1:$P_HAPROXY
  bind 127.0.0.1:$P_HAPROXY_H2 proto h2
  default_backend be
backend be
  http-request cache-use hot
  http-response cache-store hot
  server origin 127.0.0.1:$ORIGIN
CONF
haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
HAPROXY_PID=$!

start_holdfast true
wait_serving "$ORIGIN" "$P_NGINX" "$P_HAPROXY" "$P_HOLDFAST"
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -n1)

NAMES=(nginx haproxy holdfast)
declare -A H1 H2 PID_OF
H1=([nginx]=$P_NGINX [haproxy]=$P_HAPROXY [holdfast]=$P_HOLDFAST)
H2=([nginx]=$P_NGINX_H2 [haproxy]=$P_HAPROXY_H2 [holdfast]=$P_HOLDFAST)
PID_OF=([nginx]=$NGINX_WORKER [haproxy]=$HAPROXY_PID [holdfast]=$HOLDFAST_PID)
# holdfast's admin listener: how many requests wait in cache_fill while attacked.
declare -A ADMIN_OF=([holdfast]=$P_ADMIN)
if [ -n "${BASELINE_PID:-}" ]; then
  wait_serving "$P_BASELINE"
  NAMES=(nginx haproxy baseline holdfast)
  H1[baseline]=$P_BASELINE; H2[baseline]=$P_BASELINE; PID_OF[baseline]=$BASELINE_PID
  ADMIN_OF[baseline]=$((BASE_PORT + 6))
  echo "baseline: $BASELINE"
fi

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Requests in holdfast's cache_fill phase now ("-" for the peers).
in_fill() {
  [ -n "${ADMIN_OF[$1]:-}" ] || { echo -; return; }
  curl -fs "http://127.0.0.1:${ADMIN_OF[$1]}/status.json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"]["by_phase"]["cache_fill"])' 2>/dev/null || echo -
}

# attacked NAME ROUND: the shoppers' measurement while the attacker's streams are open; the
# attacker is bounded in time (timeout) and stopped by its PID.
attacked() {
  local name=$1 round=$2 peak=0 rss
  timeout $((DURATION + 4)) h2load -c4 -m200 --rps 50 -w0 -D $((DURATION + 2)) -H ':authority: bench.local' \
    "http://127.0.0.1:${H2[$name]}/page.html" >/dev/null 2>&1 &
  local attacker=$!
  PIDS+=($attacker)
  sleep 1 # its first streams are open (and lead the fill) before the shoppers come
  ( for _ in $(seq 1 $((DURATION * 2))); do echo "$(rss_kib "${PID_OF[$name]}") $(in_fill "$name")"; sleep 0.5; done ) > "$WORK/rss.$name" & local sampler=$!
  WARM=0 BENCH_PATH=/page.html measure "$name-attacked" "${H1[$name]}" "${PID_OF[$name]}" "$round"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  kill "$attacker" 2>/dev/null || true
  wait "$attacker" 2>/dev/null || true
  peak=$(awk '{print $1}' "$WORK/rss.$name" | sort -n | tail -n1)
  PEAK[$name,$round]=$(awk -v k="${peak:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
  FILL[$name,$round]=$(awk '$2 ~ /^[0-9]+$/ { if ($2 > m) m = $2; seen = 1 } END { print seen ? m + 0 : "-" }' "$WORK/rss.$name")
  echo "    $name while attacked: peak RSS ${PEAK[$name,$round]} MiB, up to ${FILL[$name,$round]} requests waiting for a fill"
}

declare -A PEAK FILL
echo "slow readers: wrk -t1 -c$CONNS -d${DURATION}s --latency (200 ms between requests) on a $PAGE_KB KB page (max-age=1), alone and beside"
echo "4 HTTP/2 connections of window-0 streams (h2load -c4 -m200 --rps 50 -w0); $ROUNDS rounds, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  for name in "${NAMES[@]}"; do
    BENCH_PATH=/page.html measure "$name-alone" "${H1[$name]}" "${PID_OF[$name]}" "$round"
    attacked "$name" "$round"
  done
done

echo
printf "%-10s %12s %10s %10s %14s %10s %10s %10s %8s\n" proxy "req/s alone" "p99 ms" "" "req/s attacked" "p50 ms" "p99 ms" "peak MiB" "waiting"
for name in "${NAMES[@]}"; do
  ra=(); pa=(); rb=(); mb=(); pb=(); mm=(); fw=()
  for round in $(seq 1 "$ROUNDS"); do
    ra+=("${RPS[$name-alone,$round]}"); pa+=("${P99[$name-alone,$round]}")
    rb+=("${RPS[$name-attacked,$round]}"); mb+=("${P50[$name-attacked,$round]}"); pb+=("${P99[$name-attacked,$round]}")
    mm+=("${PEAK[$name,$round]}"); fw+=("${FILL[$name,$round]}")
  done
  M_P99[$name]=$(median "${pb[@]}")
  printf "%-10s %12s %10s %10s %14s %10s %10s %10s %8s\n" "$name" "$(median "${ra[@]}")" "$(median "${pa[@]}")" "" \
    "$(median "${rb[@]}")" "$(median "${mb[@]}")" "${M_P99[$name]}" "$(median "${mm[@]}")" "$(median "${fw[@]}")"
done
echo
for name in "${NAMES[@]}"; do
  [ "$name" = holdfast ] && continue
  echo "holdfast/$name: p99 attacked $(ratio "${M_P99[holdfast]}" "${M_P99[$name]}")x"
done
