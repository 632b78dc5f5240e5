# Shared by the benchmarks: tools, the static origin, measuring one proxy, the summary.
# Every process started is recorded in PIDS and stopped by its PID on exit.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
BASE_PORT=${BASE_PORT:-18080}
export PATH="$PATH:/usr/sbin"

need_tools() {
  local missing=()
  for tool in wrk nginx haproxy; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

setup() {
  ORIGIN=$BASE_PORT
  P_NGINX=$((BASE_PORT + 1))
  P_HAPROXY=$((BASE_PORT + 2))
  P_HOLDFAST=$((BASE_PORT + 3))
  P_ADMIN=$((BASE_PORT + 4))
  need_tools
  # HOLDFAST_BIN: measure another build of holdfast (e.g. one with `--features aws-lc-rs`).
  if [ -n "${HOLDFAST_BIN:-}" ]; then HOLDFAST=$HOLDFAST_BIN; else
    cargo build --release -q
    HOLDFAST=$PWD/target/release/holdfast
  fi
  WORK=$(mktemp -d /tmp/holdfast-bench.XXXXXX)
  chmod 755 "$WORK"
  PIDS=()
  trap cleanup EXIT
}

cleanup() {
  # (A stopped process, such as a frozen Redis, is continued first, or it would not end.)
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# nginx_head DIR: the start of an nginx config (one worker, no access log), up to "http {".
nginx_head() {
  cat <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
CONF
}

# ORIGIN_TLS=1: the origin speaks TLS (a private CA's certificate for origin.bench.local,
# made by make_origin_certs), and every proxy verifies it and keeps sessions: nginx with
# proxy_ssl_verify and proxy_ssl_session_reuse, HAProxy with `ssl verify required`,
# holdfast with [site.pool.tls].
ORIGIN_TLS=${ORIGIN_TLS:-0}
ORIGIN_NAME=origin.bench.local

# make_origin_certs: a CA and the origin's certificate (ECDSA P-256) in $WORK/pki.
make_origin_certs() {
  mkdir -p "$WORK/pki"
  local d=$WORK/pki
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=holdfast bench CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ORIGIN_NAME" \
    -keyout "$d/origin.key" -out "$d/origin.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$ORIGIN_NAME" > "$d/ext.cnf"
  openssl x509 -req -in "$d/origin.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/ext.cnf" -out "$d/origin.pem" 2>/dev/null
  chmod 644 "$d"/*
}

# start_origin PORT EXTRA_NGINX_DIRECTIVES: nginx, one worker, a ~2 KB page (over TLS
# when ORIGIN_TLS=1).
start_origin() {
  local port=$1 extra=${2:-}
  mkdir -p "$WORK/www" "$WORK/origin"
  head -c 2048 /dev/zero | tr '\0' 'x' | sed 's/^/<html><body>/; s/$/<\/body><\/html>/' > "$WORK/www/index.html"
  local listen="listen 127.0.0.1:$port;"
  if [ "$ORIGIN_TLS" = 1 ]; then
    make_origin_certs
    listen="listen 127.0.0.1:$port ssl; ssl_certificate $WORK/pki/origin.pem; ssl_certificate_key $WORK/pki/origin.key;
    ssl_session_cache shared:SSL:10m; keepalive_requests 1000000;"
  fi
  { nginx_head "$WORK/origin"; echo "  server { $listen root $WORK/www; $extra }"; echo "}"; } > "$WORK/origin/nginx.conf"
  nginx -c "$WORK/origin/nginx.conf" -p "$WORK/origin" & PIDS+=($!)
}

# wait_serving PORT... (the origin's port over TLS when ORIGIN_TLS=1)
wait_serving() {
  for port in "$@"; do
    local url="http://127.0.0.1:$port/" tls=()
    if [ "$ORIGIN_TLS" = 1 ] && [ "$port" = "$ORIGIN" ]; then
      url="https://$ORIGIN_NAME:$port/"; tls=(--cacert "$WORK/pki/ca.pem" --resolve "$ORIGIN_NAME:$port:127.0.0.1")
    fi
    for _ in $(seq 1 100); do
      curl -fs -o /dev/null "${tls[@]}" -H 'Host: bench.local' "$url" && break
      sleep 0.1
    done
    curl -fs -o /dev/null "${tls[@]}" -H 'Host: bench.local' "$url" || { echo "port $port not serving" >&2; exit 1; }
  done
}

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
to_ms() { # wrk latency ("812.00us", "1.23ms", "1.01s") to ms; "n/a" for none
  # (wrk's table says 0.00us for a percentile its histogram lost, as it can in pipelined runs)
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000;
    if (n > 0) printf "%.3f", n; else printf "n/a" }'
}

# CHILDREN_CPU: CPU seconds (user + system) of this shell's finished children (wrk's, once
# it has ended). `times` runs in this shell (a subshell would have no children yet).
children_cpu() {
  times > "$WORK/times"
  CHILDREN_CPU=$(awk 'NR == 2 { u = $1; s = $2; sub(/m/, " ", u); sub(/s/, "", u); sub(/m/, " ", s); sub(/s/, "", s);
    split(u, a, " "); split(s, b, " "); printf "%.3f", a[1] * 60 + a[2] + b[1] * 60 + b[2] }' "$WORK/times")
}

declare -A RPS P50 P99 CPU USR CLIENT
# Extra wrk arguments (headers) for every measurement.
WRK_EXTRA=()
# The wrk script of every measurement; empty: none. status.lua counts answers by status
# (for the message when some were not 2xx); its Lua call per response costs wrk a share of
# its core, which matters when wrk itself is the limit.
WRK_SCRIPT=${WRK_SCRIPT-bench/status.lua}
# measure NAME PORT PID ROUND
measure() {
  local name=$1 port=$2 pid=$3 round=$4
  local path=${BENCH_PATH:-/}
  # A first request (it warms a cache), unless WARM=0: a measurement under attack must not
  # wait for it.
  [ "${WARM:-1}" = 0 ] || curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port$path"
  local before after ubefore uafter out reqs errors
  local cbefore cafter
  before=$(cpu_ticks "$pid"); ubefore=$(user_ticks "$pid"); children_cpu; cbefore=$CHILDREN_CPU
  local script=()
  [ -z "$WRK_SCRIPT" ] || script=(-s "$WRK_SCRIPT")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" -H 'Host: bench.local' "${WRK_EXTRA[@]}" "http://127.0.0.1:$port$path")
  after=$(cpu_ticks "$pid"); uafter=$(user_ticks "$pid"); children_cpu; cafter=$CHILDREN_CPU
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
  if [ -n "$errors" ]; then
    echo "  $name: $errors; by status: $(echo "$out" | awk '/^status/ {printf "%s %s ", $2, $3}')" >&2
  fi
  RPS[$name,$round]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P50[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  CPU[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / r }')
  USR[$name,$round]=$(awk -v d="$((uafter - ubefore))" -v t="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / r }')
  # The load generator's own share of a core: near 100%, it (not the proxy) sets the pace.
  CLIENT[$name,$round]=$(awk -v a="$cbefore" -v b="$cafter" -v d="$DURATION" 'BEGIN { printf "%.0f", (b - a) / d * 100 }')
  printf "  round %d %-9s %10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req (user %s)  wrk %s%%\n" "$round" "$name" \
    "${RPS[$name,$round]}" "${P50[$name,$round]}" "${P99[$name,$round]}" "${CPU[$name,$round]}" "${USR[$name,$round]}" \
    "${CLIENT[$name,$round]}"
}

# median VALUE...: of the numeric ones ("n/a" when there are none)
median() { printf '%s\n' "$@" | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{a[NR] = $1} END { if (NR) print a[int((NR + 1) / 2)]; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A M_RPS M_P99 M_CPU
# summary NAME... (holdfast last): medians over rounds and ratios holdfast/each
summary() {
  echo
  printf "%-9s %12s %10s %10s %12s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
  for name in "$@"; do
    local r=() a=() b=() c=()
    for round in $(seq 1 "$ROUNDS"); do
      r+=("${RPS[$name,$round]}"); a+=("${P50[$name,$round]}"); b+=("${P99[$name,$round]}"); c+=("${CPU[$name,$round]}")
    done
    M_RPS[$name]=$(median "${r[@]}"); M_P99[$name]=$(median "${b[@]}"); M_CPU[$name]=$(median "${c[@]}")
    printf "%-9s %12s %10s %10s %12s\n" "$name" "${M_RPS[$name]}" "$(median "${a[@]}")" "${M_P99[$name]}" "${M_CPU[$name]}"
  done
  echo
  [ -n "${M_RPS[holdfast]+x}" ] || return 0 # no "holdfast" among them: no ratios
  local best=0
  for name in "$@"; do
    [ "$name" = holdfast ] && continue
    echo "holdfast/$name: req/s $(ratio "${M_RPS[holdfast]}" "${M_RPS[$name]}")x  p99 $(ratio "${M_P99[holdfast]}" "${M_P99[$name]}")x  cpu/req $(ratio "${M_CPU[holdfast]}" "${M_CPU[$name]}")x"
    [ "$name" = baseline ] && continue # the best of the peers, not of holdfast's own builds
    best=$(printf '%s\n' "$best" "${M_RPS[$name]}" | sort -g | tail -n1)
  done
  echo "holdfast/best: req/s $(ratio "${M_RPS[holdfast]}" "$best")x"
}

# holdfast_config PORT ADMIN_PORT ORIGIN_PORT CACHE(true|false)
holdfast_config() {
  cat <<CONF
[listen]
http = ["127.0.0.1:$1"]
admin = "127.0.0.1:$2"
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
enabled = $4
[[site.pool]]
datacenter = "local"
origins = ["127.0.0.1:$3"]
CONF
  if [ "$ORIGIN_TLS" = 1 ]; then
    printf '[site.pool.tls]\nserver_name = "%s"\nca = "%s"\n' "$ORIGIN_NAME" "$WORK/pki/ca.pem"
  fi
}

# start_nginx_proxy PORT ORIGIN_PORT HTTP_EXTRA LOCATION_EXTRA: nginx as reverse proxy,
# one worker, keep-alive upstream; sets NGINX_MASTER.
start_nginx_proxy() {
  local port=$1 origin=$2 http_extra=${3:-} location_extra=${4:-} scheme=http
  if [ "$ORIGIN_TLS" = 1 ]; then
    scheme=https
    location_extra="$location_extra
      proxy_ssl_server_name on; proxy_ssl_name $ORIGIN_NAME; proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $WORK/pki/ca.pem; proxy_ssl_session_reuse on;"
  fi
  mkdir -p "$WORK/proxy"
  { nginx_head "$WORK/proxy"; cat <<CONF; } > "$WORK/proxy/nginx.conf"
  $http_extra
  upstream origin { server 127.0.0.1:$origin; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass $scheme://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      $location_extra
    }
  }
}
CONF
  nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & PIDS+=($!)
  NGINX_MASTER=$!
}

# start_haproxy PORT ORIGIN_PORT SECTIONS_EXTRA BACKEND_EXTRA: HAProxy, one thread;
# sets HAPROXY_PID.
start_haproxy() {
  local port=$1 origin=$2 sections=${3:-} backend=${4:-} server_tls=""
  [ "$ORIGIN_TLS" = 1 ] && server_tls="ssl verify required ca-file $WORK/pki/ca.pem sni str($ORIGIN_NAME) verifyhost $ORIGIN_NAME"
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
$sections
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
$backend
  server origin 127.0.0.1:$origin $server_tls
CONF
  haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
  HAPROXY_PID=$!
}

# run_rounds TITLE: interleaved rounds over nginx, HAProxy, the baseline holdfast (when
# BASELINE names a binary) and holdfast, then the summary.
run_rounds() {
  local ports=("$ORIGIN" "$P_NGINX" "$P_HAPROXY" "$P_HOLDFAST")
  [ -z "${BASELINE_PID:-}" ] || ports+=("$P_BASELINE")
  wait_serving "${ports[@]}"
  local nginx_worker
  nginx_worker=$(pgrep -P "$NGINX_MASTER" | head -n1)
  echo "$1: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds, $(nproc) cores"
  [ -z "${BASELINE_PID:-}" ] || echo "baseline: $BASELINE"
  for round in $(seq 1 "$ROUNDS"); do
    measure nginx "$P_NGINX" "$nginx_worker" "$round"
    measure haproxy "$P_HAPROXY" "$HAPROXY_PID" "$round"
    [ -z "${BASELINE_PID:-}" ] || measure baseline "$P_BASELINE" "$BASELINE_PID" "$round"
    measure holdfast "$P_HOLDFAST" "$HOLDFAST_PID" "$round"
  done
  if [ -z "${BASELINE_PID:-}" ]; then summary nginx haproxy holdfast; else summary nginx haproxy baseline holdfast; fi
}

# start_holdfast CACHE(true|false): holdfast, one worker; sets HOLDFAST_PID. With BASELINE
# set to another holdfast binary (an earlier build, say), it runs beside it on the same
# config (its own ports), so that both figures come from one run; sets BASELINE_PID.
start_holdfast() {
  holdfast_config "$P_HOLDFAST" "$P_ADMIN" "$ORIGIN" "$1" > "$WORK/holdfast.toml"
  RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/holdfast.toml" & PIDS+=($!)
  HOLDFAST_PID=$!
  if [ -n "${BASELINE:-}" ]; then
    P_BASELINE=$((BASE_PORT + 5))
    holdfast_config "$P_BASELINE" "$((BASE_PORT + 6))" "$ORIGIN" "$1" > "$WORK/baseline.toml"
    RUST_LOG=error "$BASELINE" run --workers 1 --config "$WORK/baseline.toml" & PIDS+=($!)
    BASELINE_PID=$!
  fi
}

# start_haproxy_h2 TLS_PORT H2C_PORT COMBINED_PEM: HAProxy, one thread, in front of the
# origin: TLS 1.3 with h2 and http/1.1 by ALPN on one port, HTTP/2 with prior knowledge on
# the other; sets HAPROXY_PID.
start_haproxy_h2() {
  cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$1 ssl crt $3 alpn h2,http/1.1
  bind 127.0.0.1:$2 proto h2
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN
CONF
  haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
  HAPROXY_PID=$!
}
