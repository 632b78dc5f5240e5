#!/usr/bin/env bash
# The cache's benchmarks, on this machine, side by side, loopback only; every process
# started here is stopped by its PID.
#
# 1. Hits: holdfast's cache against nginx proxy_cache and HAProxy's cache. The origin
#    (nginx, one worker) serves a ~2 KB page with Cache-Control: public, max-age=3600, so
#    after the first request every proxy answers from its cache. Measured twice: one
#    request at a time per connection (where wrk, at 100% of its core, may be the limit),
#    and 16 pipelined per write (bench/pipeline.lua), where each proxy's core is.
# 2. Pages that change: the cache must never make a site slower than no cache. A file
#    rewritten every second, served with Last-Modified only (heuristic freshness), and the
#    same with Cache-Control: public, max-age=1 and an ETag; holdfast with its cache on (the
#    default) against holdfast with it off, on the same origin.
#
# 3. Compressed hits: a ~12 KB shop page (text/html) asked with `Accept-Encoding: gzip, br`,
#    as browsers send it. nginx with `gzip on` (its default level 1) in front of
#    proxy_cache, HAProxy with `compression algo gzip` and its cache (process-vary on), and
#    holdfast with its defaults (it picks br, and its cache keeps the compressed variant).
#    Also the body bytes each sends.
#
# One worker/thread each, no access log; `wrk -t1 -c${CONNS} -d${DURATION}s --latency`,
# interleaved, ${ROUNDS} rounds; prints requests/s, p50, p99, CPU microseconds per request
# and the ratios.
#
# Usage: bench/cache.sh            (ROUNDS=3 DURATION=10 CONNS=64 by default)
#        CASES=3 bench/cache.sh    (some of the cases only: CASES="1 2 3" by default)
#        BASELINE=/path/to/an/older/holdfast bench/cache.sh   (that build beside this one)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup
declare -A BYTES

# The pages that change: /heur/ (Last-Modified only: no ETag, no Cache-Control) and
# /short/ (max-age=1 and an ETag). A location's own add_header keeps the server's
# Cache-Control off it.
start_origin "$ORIGIN" 'add_header Cache-Control "public, max-age=3600";
  location /heur/ { etag off; add_header X-Page heuristic; }
  location /short/ { add_header Cache-Control "public, max-age=1"; }'
mkdir -p "$WORK/www/heur" "$WORK/www/short"
rewrite_pages() {
  for f in heur short; do
    { date +%s.%N; head -c 2048 /dev/zero | tr '\0' 'y'; } > "$WORK/www/$f/page.tmp"
    mv "$WORK/www/$f/page.tmp" "$WORK/www/$f/page.html"
  done
}
rewrite_pages
# Rewritten every second for as long as the benchmark can take, and no longer.
( for _ in $(seq 1 $((ROUNDS * DURATION * 8 + 60))); do sleep 1; rewrite_pages; done ) & PIDS+=($!)

mkdir -p "$WORK/proxy/cache"
chmod 777 "$WORK/proxy/cache"
start_nginx_proxy "$P_NGINX" "$ORIGIN" "proxy_cache_path $WORK/proxy/cache levels=1:2 keys_zone=hot:10m max_size=64m inactive=60m;" 'proxy_cache hot; add_header X-Cache-Status $upstream_cache_status;'

start_haproxy "$P_HAPROXY" "$ORIGIN" "$(printf 'cache hot\n  total-max-size 64\n  max-object-size 100000\n  max-age 3600')" "$(printf '  http-request cache-use hot\n  http-response cache-store hot')"

start_holdfast true

wait_serving "$ORIGIN" "$P_NGINX" "$P_HAPROXY" "$P_HOLDFAST"
# Warm every cache, and show that each really answers from it.
for port in "$P_NGINX" "$P_HAPROXY" "$P_HOLDFAST"; do curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/"; done
echo "nginx:    $(curl -fsI -H 'Host: bench.local' "http://127.0.0.1:$P_NGINX/" | grep -i '^x-cache-status' | tr -d '\r')"
echo "holdfast: $(curl -fsI -H 'Host: bench.local' "http://127.0.0.1:$P_HOLDFAST/" | grep -i '^cache-status' | tr -d '\r')"

CASES=${CASES:-1 2 3}
has_case() { [[ " $CASES " == *" $1 "* ]]; }
if has_case 1; then
# wrk runs without a Lua script here (it still counts answers that are not 2xx): its Lua
# call per response made wrk, not the proxies, the limit at these rates. The "wrk" column
# is its share of its core: near 100%, the figure is the client's ceiling, not the proxy's.
WRK_SCRIPT= run_rounds "1. cache hits"
echo
# The same with 16 requests pipelined per write (as TechEmpower's plaintext test): the
# load generator spends little per request, so each proxy runs at 100% of its core and
# the figure is what one core of it answers.
WRK_SCRIPT=bench/pipeline.lua PIPELINE=16 run_rounds "1b. cache hits, 16 requests pipelined per write"

fi

if has_case 2; then
# 2. holdfast with its cache off beside it (its own ports), on the pages that change.
P_OFF=$((BASE_PORT + 7))
holdfast_config "$P_OFF" "$((BASE_PORT + 8))" "$ORIGIN" false > "$WORK/holdfast-off.toml"
RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/holdfast-off.toml" & PIDS+=($!)
OFF_PID=$!
wait_serving "$P_OFF"
for page in heur short; do
  echo
  echo "2. /$page/page.html ($([ $page = heur ] && echo 'Last-Modified only: heuristic freshness' || echo 'max-age=1 and an ETag')), rewritten every second"
  echo "   origin: $(curl -fsI "http://127.0.0.1:$ORIGIN/$page/page.html" | grep -iE '^(cache-control|etag|last-modified):' | tr -d '\r' | tr '\n' ' ')"
  names=(cache-off cache-on)
  for round in $(seq 1 "$ROUNDS"); do
    BENCH_PATH=/$page/page.html measure cache-off "$P_OFF" "$OFF_PID" "$round"
    BENCH_PATH=/$page/page.html measure cache-on "$P_HOLDFAST" "$HOLDFAST_PID" "$round"
    if [ -n "${BASELINE_PID:-}" ]; then
      BENCH_PATH=/$page/page.html measure baseline-on "$P_BASELINE" "$BASELINE_PID" "$round"
      names=(cache-off cache-on baseline-on)
    fi
  done
  echo "   holdfast: $(curl -fs "http://127.0.0.1:$P_ADMIN/metrics" | grep -E 'holdfast_cache_total\{site="bench"' | tr '\n' ' ')"
  printf "%-9s %12s %10s %10s %12s\n" "" "req/s" "p50 ms" "p99 ms" "cpu us/req"
  for name in "${names[@]}"; do
    r=(); a=(); b=(); c=()
    for round in $(seq 1 "$ROUNDS"); do
      r+=("${RPS[$name,$round]}"); a+=("${P50[$name,$round]}"); b+=("${P99[$name,$round]}"); c+=("${CPU[$name,$round]}")
    done
    M_RPS[$name]=$(median "${r[@]}"); M_P99[$name]=$(median "${b[@]}"); M_CPU[$name]=$(median "${c[@]}")
    printf "%-9s %12s %10s %10s %12s\n" "$name" "${M_RPS[$name]}" "$(median "${a[@]}")" "${M_P99[$name]}" "${M_CPU[$name]}"
  done
  echo "   cache on/off: req/s $(ratio "${M_RPS[cache-on]}" "${M_RPS[cache-off]}")x  p99 $(ratio "${M_P99[cache-on]}" "${M_P99[cache-off]}")x"
  [ -z "${BASELINE_PID:-}" ] || echo "   baseline (cache on)/off: req/s $(ratio "${M_RPS[baseline-on]}" "${M_RPS[cache-off]}")x  p99 $(ratio "${M_P99[baseline-on]}" "${M_P99[cache-off]}")x"
done
fi

if has_case 3; then
# 3. Compressed hits. The page: a product list as a shop renders it.
mkdir -p "$WORK/www/shop"
for i in $(seq 1 150); do
  printf '<li class="product"><a href="/p/%d"><img src="/img/%d.svg" alt="Adventskranz %d" width="120" height="90"></a> <span class="price">%d,99 €</span></li>\n' "$i" "$i" "$i" $((i % 40 + 9))
done | { echo '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Advent</title></head><body><ul>'; cat; echo '</ul></body></html>'; } > "$WORK/www/shop/page.html"
kill "$NGINX_MASTER" "$HAPROXY_PID" 2>/dev/null || true
wait "$NGINX_MASTER" "$HAPROXY_PID" 2>/dev/null || true
start_nginx_proxy "$P_NGINX" "$ORIGIN" "proxy_cache_path $WORK/proxy/cache-gz levels=1:2 keys_zone=gz:10m max_size=64m inactive=60m;
  gzip on; gzip_proxied any; gzip_vary on;" 'proxy_cache gz;'
start_haproxy "$P_HAPROXY" "$ORIGIN" "$(printf 'cache hot\n  total-max-size 64\n  max-object-size 100000\n  max-age 3600\n  process-vary on')" \
  "$(printf '  filter cache hot\n  filter compression\n  compression algo gzip\n  compression type text/html\n  http-request cache-use hot\n  http-response cache-store hot')"
wait_serving "$P_NGINX" "$P_HAPROXY"
echo
echo "3. compressed hits: /shop/page.html ($(stat -c %s "$WORK/www/shop/page.html") bytes), Accept-Encoding: gzip, br"
for p in "nginx $P_NGINX" "haproxy $P_HAPROXY" "holdfast $P_HOLDFAST"; do
  set -- $p
  for _ in 1 2; do curl -fs -o /dev/null -H 'Host: bench.local' -H 'Accept-Encoding: gzip, br' "http://127.0.0.1:$2/shop/page.html"; done
  enc=$(curl -fs -D - -o /dev/null -H 'Host: bench.local' -H 'Accept-Encoding: gzip, br' "http://127.0.0.1:$2/shop/page.html" | { grep -i '^content-encoding' || true; } | tr -d '\r' | awk '{print $2}')
  size=$(curl -fs -H 'Host: bench.local' -H 'Accept-Encoding: gzip, br' -o /dev/null -w '%{size_download}' "http://127.0.0.1:$2/shop/page.html")
  BYTES[$1]=$size
  echo "   $1: Content-Encoding ${enc:-none}, $size body bytes"
done
echo "   body bytes holdfast/nginx: $(ratio "${BYTES[holdfast]}" "${BYTES[nginx]}")x"
WRK_EXTRA=(-H 'Accept-Encoding: gzip, br')
# The first request of each measurement asks without Accept-Encoding (an identity variant
# in every cache); the coded answers must stay coded after it.
BENCH_PATH=/shop/page.html WRK_SCRIPT= run_rounds "3. compressed hits"
for p in "nginx $P_NGINX" "haproxy $P_HAPROXY" "holdfast $P_HOLDFAST"; do
  set -- $p
  enc=$(curl -fs -D - -o /dev/null -H 'Host: bench.local' -H 'Accept-Encoding: gzip, br' "http://127.0.0.1:$2/shop/page.html" | { grep -i '^content-encoding' || true; } | tr -d '\r' | awk '{print $2}')
  size=$(curl -fs -H 'Host: bench.local' -H 'Accept-Encoding: gzip, br' -o /dev/null -w '%{size_download}' "http://127.0.0.1:$2/shop/page.html")
  echo "   after the rounds, $1: Content-Encoding ${enc:-none}, $size body bytes"
done
fi
