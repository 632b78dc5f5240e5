#!/usr/bin/env bash
# Reverse-proxy benchmark: holdfast against nginx and HAProxy on this machine, side by side.
#
# One static origin (nginx, one worker, a ~2 KB page). Three proxies in front of it with
# comparable settings (one worker/thread each, keep-alive to the origin, no access log):
# nginx, HAProxy and holdfast (--workers 1). Each is measured with
# `wrk -t1 -c64 -d${DURATION}s --latency`, interleaved, for ${ROUNDS} rounds. Prints
# requests/s, p50, p99 and the proxy's CPU microseconds per request (from /proc), the
# median over rounds, and the ratios holdfast/nginx and holdfast/haproxy.
# Only loopback is used; every process started here is stopped by its PID at the end.
#
# Usage: bench/proxy.sh            (ROUNDS=3 DURATION=10 CONNS=64 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
BASE_PORT=${BASE_PORT:-18080}

missing=()
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

cargo build --release -q
HOLDFAST=$PWD/target/release/holdfast
WORK=$(mktemp -d /tmp/holdfast-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ORIGIN=$BASE_PORT
P_NGINX=$((BASE_PORT + 1))
P_HAPROXY=$((BASE_PORT + 2))
P_HOLDFAST=$((BASE_PORT + 3))
P_ADMIN=$((BASE_PORT + 4))

# ---- origin: nginx, one worker, a ~2 KB page
mkdir -p "$WORK/www" "$WORK/origin" "$WORK/proxy"
head -c 2048 /dev/zero | tr '\0' 'x' | sed 's/^/<html><body>/; s/$/<\/body><\/html>/' > "$WORK/www/index.html"
cat > "$WORK/origin/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN; root $WORK/www; }
}
CONF
nginx -c "$WORK/origin/nginx.conf" -p "$WORK/origin" & PIDS+=($!)

# ---- nginx as reverse proxy
cat > "$WORK/proxy/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_buffering on;
    }
  }
}
CONF
nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & PIDS+=($!)
NGINX_MASTER=$!

# ---- HAProxy, one thread
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
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAPROXY
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN
CONF
haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
HAPROXY_PID=$!

# ---- holdfast, one worker
cat > "$WORK/holdfast.toml" <<CONF
[listen]
http = ["127.0.0.1:$P_HOLDFAST"]
admin = "127.0.0.1:$P_ADMIN"
[log]
access = false
[[datacenter]]
name = "local"
[[site]]
name = "bench"
hosts = ["bench.local", "127.0.0.1"]
[site.health]
path = "/"                     # the static origin has no /healthz
[site.cache]
enabled = false                # proxying is measured here; bench/cache.sh measures hits
[[site.pool]]
datacenter = "local"
origins = ["127.0.0.1:$ORIGIN"]
CONF
RUST_LOG=warn "$HOLDFAST" run --workers 1 --config "$WORK/holdfast.toml" & PIDS+=($!)
HOLDFAST_PID=$!

for port in $ORIGIN $P_NGINX $P_HAPROXY $P_HOLDFAST; do
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/" || { echo "port $port not serving" >&2; exit 1; }
done
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -n1)

TICK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a pid
  awk '{print $14 + $15}' "/proc/$1/stat"
}
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
to_ms() { # wrk latency ("812.00us", "1.23ms", "1.01s") to ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

declare -A RPS P50 P99 CPU USR M_RPS M_P99 M_CPU
measure() { # name port pid round
  local name=$1 port=$2 pid=$3 round=$4
  curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/"
  local before after out reqs
  before=$(cpu_ticks "$pid")
  local ubefore uafter
  ubefore=$(user_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H 'Host: bench.local' "http://127.0.0.1:$port/")
  after=$(cpu_ticks "$pid")
  uafter=$(user_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local errors
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
  [ -z "$errors" ] || echo "  $name: $errors" >&2
  RPS[$name,$round]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P50[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  CPU[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / r }')
  USR[$name,$round]=$(awk -v d="$((uafter - ubefore))" -v t="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / r }')
  printf "  round %d %-9s %10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req (user %s)\n" "$round" "$name" \
    "${RPS[$name,$round]}" "${P50[$name,$round]}" "${P99[$name,$round]}" "${CPU[$name,$round]}" "${USR[$name,$round]}"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }

echo "holdfast proxy benchmark: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  measure nginx "$P_NGINX" "$NGINX_WORKER" "$round"
  measure haproxy "$P_HAPROXY" "$HAPROXY_PID" "$round"
  measure holdfast "$P_HOLDFAST" "$HOLDFAST_PID" "$round"
done

echo
printf "%-9s %12s %10s %10s %12s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
for name in nginx haproxy holdfast; do
  r=(); a=(); b=(); c=()
  for round in $(seq 1 "$ROUNDS"); do
    r+=("${RPS[$name,$round]}"); a+=("${P50[$name,$round]}"); b+=("${P99[$name,$round]}"); c+=("${CPU[$name,$round]}")
  done
  M_RPS[$name]=$(median "${r[@]}"); M_P99[$name]=$(median "${b[@]}"); M_CPU[$name]=$(median "${c[@]}")
  printf "%-9s %12s %10s %10s %12s\n" "$name" "${M_RPS[$name]}" "$(median "${a[@]}")" "${M_P99[$name]}" "${M_CPU[$name]}"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "holdfast/nginx:   req/s $(ratio "${M_RPS[holdfast]}" "${M_RPS[nginx]}")x  p99 $(ratio "${M_P99[holdfast]}" "${M_P99[nginx]}")x  cpu/req $(ratio "${M_CPU[holdfast]}" "${M_CPU[nginx]}")x"
echo "holdfast/haproxy: req/s $(ratio "${M_RPS[holdfast]}" "${M_RPS[haproxy]}")x  p99 $(ratio "${M_P99[holdfast]}" "${M_P99[haproxy]}")x  cpu/req $(ratio "${M_CPU[holdfast]}" "${M_CPU[haproxy]}")x"
best=$(printf '%s\n' "${M_RPS[nginx]}" "${M_RPS[haproxy]}" | sort -g | tail -n1)
echo "holdfast/best:    req/s $(ratio "${M_RPS[holdfast]}" "$best")x (target >= 1.0, later 1.2)"
