#!/usr/bin/env bash
# HTTP/2 (and HTTP/1.1 over TLS) at the edge: holdfast against nginx and HAProxy on this
# machine, side by side, as issue 25 measures them.
#
# One static origin (nginx, one worker, a ~2 KB page). Three proxies in front of it, one
# worker/thread each, keep-alive to the origin, no access log, holdfast's cache off, and the
# same ECDSA P-256 certificate with TLS 1.3 only:
#   1. HTTP/2 over TLS:            h2load -c32 -m10 (ALPN h2)
#   2. HTTP/2 with prior knowledge: h2load -c32 -m10 on a plain listener
#   3. HTTP/1.1 over TLS:          wrk -t1 -c64, keep-alive
#   4. a new TLS connection per request: wrk -t1 -c64 with Connection: close
#   5. holdfast's HTTP/3 beside its HTTP/2 over TLS: h3load -c32 -m10 (crates/gateway/examples,
#      quinn and h3: Debian's h2load has no QUIC, and Debian's nginx and HAProxy none either)
# Interleaved rounds; prints requests/s, the proxy's CPU microseconds per request (from
# /proc), the medians and the ratios. Loopback only; every process is stopped by its PID.
#
# Usage: bench/h2.sh                  (ROUNDS=3 DURATION=10 by default)
#        CASES="1 2" bench/h2.sh      (some of the cases only)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup
command -v h2load >/dev/null || { apt-get install -y -qq nghttp2-client >/dev/null; }
CASES=${CASES:-1 2 3 4 5}
cargo build --release -q -p holdfast-gateway --example h3load
H3LOAD=$PWD/target/release/examples/h3load
P_NG_TLS=$((BASE_PORT + 10)); P_NG_H2C=$((BASE_PORT + 11))
P_HA_TLS=$((BASE_PORT + 12)); P_HA_H2C=$((BASE_PORT + 13))
P_HF_TLS=$((BASE_PORT + 14)); P_HF_H2C=$((BASE_PORT + 15)); P_HF_ADMIN=$((BASE_PORT + 16))

# The edge certificate (ECDSA P-256) for bench.local, from a CA of the run's own.
mkdir -p "$WORK/edge"
E=$WORK/edge
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=holdfast bench edge CA" \
  -keyout "$E/ca.key" -out "$E/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench.local" \
  -keyout "$E/edge.key" -out "$E/edge.csr" 2>/dev/null
printf 'subjectAltName=DNS:bench.local,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$E/ext.cnf"
openssl x509 -req -in "$E/edge.csr" -CA "$E/ca.pem" -CAkey "$E/ca.key" -CAcreateserial -days 30 \
  -extfile "$E/ext.cnf" -out "$E/edge.pem" 2>/dev/null
cat "$E/edge.pem" "$E/edge.key" > "$E/combined.pem"
chmod 644 "$E"/*

start_origin "$ORIGIN"

# ---- nginx: TLS 1.3 with h2 and http/1.1 by ALPN; a plain listener with HTTP/2 only.
start_nginx_proxy_h2() {
  mkdir -p "$WORK/proxy"
  { nginx_head "$WORK/proxy"; cat <<CONF; } > "$WORK/proxy/nginx.conf"
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  ssl_protocols TLSv1.3;
  ssl_certificate $E/edge.pem;
  ssl_certificate_key $E/edge.key;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$P_NG_TLS ssl http2;
    listen 127.0.0.1:$P_NG_H2C http2;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; }
  }
}
CONF
  nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & PIDS+=($!)
  NGINX_MASTER=$!
}
start_nginx_proxy_h2

# ---- HAProxy, one thread: the same.
start_haproxy_h2 "$P_HA_TLS" "$P_HA_H2C" "$E/combined.pem"

# ---- holdfast, one worker, cache off.
holdfast_config "$P_HF_H2C" "$P_HF_ADMIN" "$ORIGIN" false \
  | sed "s|^http = .*|http = [\"127.0.0.1:$P_HF_H2C\"]\nhttps = [\"127.0.0.1:$P_HF_TLS\"]\nquic = [\"127.0.0.1:$P_HF_TLS\"]|" \
  | sed "s|^hosts = \(.*\)|hosts = \1\ntls = { cert = \"$E/edge.pem\", key = \"$E/edge.key\" }|" > "$WORK/holdfast.toml"
RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/holdfast.toml" & PIDS+=($!)
HOLDFAST_PID=$!

wait_serving "$ORIGIN"
for url in "https://127.0.0.1:$P_NG_TLS/" "https://127.0.0.1:$P_HA_TLS/" "https://127.0.0.1:$P_HF_TLS/" \
  "http://127.0.0.1:$P_NG_H2C/" "http://127.0.0.1:$P_HA_H2C/" "http://127.0.0.1:$P_HF_H2C/"; do
  h2=(); [[ $url == http:* ]] && h2=(--http2-prior-knowledge)
  for _ in $(seq 1 100); do curl -fsk "${h2[@]}" -o /dev/null "$url" && break; sleep 0.1; done
  curl -fsk "${h2[@]}" -o /dev/null "$url" || { echo "$url not serving" >&2; exit 1; }
done
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -n1)

# h2load_measure NAME URL PID ROUND EXTRA...: requests/s and CPU µs per request.
h2load_measure() {
  local name=$1 url=$2 pid=$3 round=$4; shift 4
  local before after out reqs
  before=$(cpu_ticks "$pid")
  out=$(h2load -c32 -m10 -D "$DURATION" "$@" "$url" 2>&1)
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/^requests:/ {print $8}')
  RPS[$name,$round]=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
  CPU[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="${reqs:-0}" 'BEGIN { if (r > 0) printf "%.1f", d / t * 1e6 / r; else print "n/a" }')
  P50[$name,$round]=n/a; P99[$name,$round]=n/a
  local failed ok2xx
  failed=$(echo "$out" | awk '/^requests:/ {print $10}')
  [ "${failed:-0}" = 0 ] || echo "  $name: $failed requests failed" >&2
  ok2xx=$(echo "$out" | awk '/^status codes:/ {print $3}')
  [ "${ok2xx:-0}" -ge "${reqs:-0}" ] || echo "  $name: only ${ok2xx:-0} of ${reqs:-0} answers were 2xx" >&2
  printf "  round %d %-9s %10s req/s  cpu %6s us/req\n" "$round" "$name" "${RPS[$name,$round]}" "${CPU[$name,$round]}"
}

# h3load_measure NAME PID ROUND: as h2load_measure, over HTTP/3 to holdfast's QUIC listener.
h3load_measure() {
  local name=$1 pid=$2 round=$3 before after out reqs failed
  before=$(cpu_ticks "$pid")
  out=$("$H3LOAD" -c 32 -m 10 -D "$DURATION" --ca "$E/ca.pem" --sni bench.local "https://127.0.0.1:$P_HF_TLS/" 2>&1)
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/^requests:/ {print $8}')
  RPS[$name,$round]=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
  CPU[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="${reqs:-0}" 'BEGIN { if (r > 0) printf "%.1f", d / t * 1e6 / r; else print "n/a" }')
  P50[$name,$round]=n/a; P99[$name,$round]=n/a
  failed=$(echo "$out" | awk '/^requests:/ {print $10}')
  [ "${failed:-0}" = 0 ] || echo "  $name: $failed requests failed" >&2
  printf "  round %d %-9s %10s req/s  cpu %6s us/req\n" "$round" "$name" "${RPS[$name,$round]}" "${CPU[$name,$round]}"
}

declare -A RPS P50 P99 CPU USR CLIENT
run_case() {
  local n=$1 title
  for round in $(seq 1 "$ROUNDS"); do
    case $n in
      1) title="HTTP/2 over TLS (h2load -c32 -m10)"
         h2load_measure nginx "https://127.0.0.1:$P_NG_TLS/" "$NGINX_WORKER" "$round"
         h2load_measure haproxy "https://127.0.0.1:$P_HA_TLS/" "$HAPROXY_PID" "$round"
         h2load_measure holdfast "https://127.0.0.1:$P_HF_TLS/" "$HOLDFAST_PID" "$round" ;;
      2) title="HTTP/2 with prior knowledge (h2load -c32 -m10)"
         h2load_measure nginx "http://127.0.0.1:$P_NG_H2C/" "$NGINX_WORKER" "$round"
         h2load_measure haproxy "http://127.0.0.1:$P_HA_H2C/" "$HAPROXY_PID" "$round"
         h2load_measure holdfast "http://127.0.0.1:$P_HF_H2C/" "$HOLDFAST_PID" "$round" ;;
      3|4) title="HTTP/1.1 over TLS, keep-alive (wrk -c$CONNS)"
         WRK_EXTRA=()
         if [ "$n" = 4 ]; then title="a new TLS connection per request (wrk -c$CONNS, Connection: close)"; WRK_EXTRA=(-H "Connection: close"); fi
         measure_tls nginx "$P_NG_TLS" "$NGINX_WORKER" "$round"
         measure_tls haproxy "$P_HA_TLS" "$HAPROXY_PID" "$round"
         measure_tls holdfast "$P_HF_TLS" "$HOLDFAST_PID" "$round" ;;
      5) title="holdfast: HTTP/3 (h3load -c32 -m10) beside HTTP/2 over TLS (h2load -c32 -m10)"
         h2load_measure holdfast-h2 "https://127.0.0.1:$P_HF_TLS/" "$HOLDFAST_PID" "$round"
         h3load_measure holdfast-h3 "$HOLDFAST_PID" "$round" ;;
    esac
  done
  echo "== $title: $ROUNDS rounds of ${DURATION}s"
  if [ "$n" = 5 ]; then
    unset 'M_RPS[holdfast]' # an earlier case's: no holdfast-against-peers ratios here
    summary holdfast-h2 holdfast-h3
    echo "HTTP/3 / HTTP/2: req/s $(ratio "${M_RPS[holdfast-h3]}" "${M_RPS[holdfast-h2]}")x  cpu/req $(ratio "${M_CPU[holdfast-h3]}" "${M_CPU[holdfast-h2]}")x"
  else
    summary nginx haproxy holdfast
  fi
}

# measure_tls NAME PORT PID ROUND: as lib.sh's measure, over https.
measure_tls() {
  local name=$1 port=$2 pid=$3 round=$4 before after out reqs
  before=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H 'Host: bench.local' "${WRK_EXTRA[@]}" "https://127.0.0.1:$port/")
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS[$name,$round]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P50[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$name,$round]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  CPU[$name,$round]=$(awk -v d="$((after - before))" -v t="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", d / t * 1e6 / r }')
  local errors
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
  [ -z "$errors" ] || echo "  $name: $errors" >&2
  printf "  round %d %-9s %10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req\n" "$round" "$name" \
    "${RPS[$name,$round]}" "${P50[$name,$round]}" "${P99[$name,$round]}" "${CPU[$name,$round]}"
}

echo "holdfast HTTP/2 benchmark: one worker/thread each, TLS 1.3, ECDSA P-256, $(nproc) cores"
for n in $CASES; do run_case "$n"; done
