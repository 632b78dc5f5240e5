#!/usr/bin/env bash
# Reverse-proxy benchmark: holdfast against nginx and HAProxy on this machine, side by side.
#
# One static origin (nginx, one worker, a ~2 KB page). Three proxies in front of it with
# comparable settings (one worker/thread each, keep-alive to the origin, no access log,
# and the same forwarding fields: X-Forwarded-For, Forwarded, X-Forwarded-Proto,
# X-Forwarded-Host and Via to the origin, Via on the response, which holdfast always
# sends): nginx, HAProxy and holdfast (--workers 1). Each is measured with
# `wrk -t1 -c64 -d${DURATION}s --latency`, interleaved, for ${ROUNDS} rounds. Prints
# requests/s, p50, p99 and the proxy's CPU microseconds per request (from /proc), the
# median over rounds, and the ratios holdfast/nginx and holdfast/haproxy.
# Only loopback is used; every process started here is stopped by its PID at the end.
#
# ORIGIN_TLS=1: the origin speaks TLS (nginx with a private CA's ECDSA P-256 certificate)
# and every proxy verifies it and resumes sessions toward it (nginx: proxy_ssl_verify on,
# proxy_ssl_session_reuse on; HAProxy: ssl verify required ca-file; holdfast:
# [site.pool.tls] with server_name and ca).
#
# Usage: bench/proxy.sh            (ROUNDS=3 DURATION=10 CONNS=64 by default)
#        ORIGIN_TLS=1 bench/proxy.sh
#        BASELINE=/path/to/older/holdfast bench/proxy.sh   (also measures that build, same run)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup

start_origin "$ORIGIN"

# ---- nginx as reverse proxy, one worker, keep-alive upstream
start_nginx_proxy "$P_NGINX" "$ORIGIN" "" '
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=$host";
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header Via "1.1 nginx";
      add_header Via "1.1 nginx";'

# ---- HAProxy, one thread
start_haproxy "$P_HAPROXY" "$ORIGIN" "" '  option forwardfor
  http-request set-header Forwarded for=%[src];proto=http;host=%[req.hdr(host)]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request add-header Via "1.1 haproxy"
  http-response add-header Via "1.1 haproxy"'

# ---- holdfast, one worker, cache off (proxying is measured; bench/cache.sh measures hits)
start_holdfast false

title="holdfast proxy benchmark"
[ "$ORIGIN_TLS" = 1 ] && title="holdfast proxy benchmark, HTTPS origin (verified, sessions resumed)"
run_rounds "$title"
if [ "$ORIGIN_TLS" = 1 ]; then
  # How many TLS handshakes holdfast made to the origin over the whole run, and how many
  # of them resumed a session (keep-alive pooling keeps both small).
  curl -fs "http://127.0.0.1:$P_ADMIN/status.json" | python3 -c '
import json, sys
o = json.load(sys.stdin)["sites"][0]["pools"][0]["origins"][0]
t = o.get("tls", {})
print("holdfast to the origin: %s requests, %s TLS handshakes, %s resumed" % (o["requests"], t.get("handshakes"), t.get("resumed")))'
fi
