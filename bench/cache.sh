#!/usr/bin/env bash
# Cache-hit benchmark: holdfast's cache against nginx proxy_cache and HAProxy's cache on
# this machine, side by side. The origin (nginx, one worker) serves a ~2 KB page with
# Cache-Control: public, max-age=3600, so after the first request every proxy answers from
# its cache. One worker/thread each, no access log; `wrk -t1 -c64 -d${DURATION}s --latency`,
# interleaved, ${ROUNDS} rounds; prints requests/s, p50, p99, CPU microseconds per request
# and the ratios. Loopback only; every process started here is stopped by its PID.
#
# Usage: bench/cache.sh            (ROUNDS=3 DURATION=10 CONNS=64 by default)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup

start_origin "$ORIGIN" 'add_header Cache-Control "public, max-age=3600";'

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

run_rounds "holdfast cache-hit benchmark"
