#!/usr/bin/env bash
# What the fleet costs the request path (docs/fleet.md): request rate and p99 of holdfast
# alone, and of a fleet instance with its Redis healthy, frozen (SIGSTOP) and gone (killed),
# each wrk -t1 -c$CONNS, holdfast --workers 1, the shield judging every request under a
# shared per-prefix limit it never reaches; nginx and HAProxy proxying the same page beside
# them for scale. Then the Redis commands per second a fleet instance sends at two request
# rates (wrk -c1 and -c$CONNS): they must not grow with the rate.
# Usage: bench/fleet.sh   (ROUNDS, DURATION, CONNS as in bench/lib.sh)
cd "$(dirname "$0")/.."
source bench/lib.sh
setup
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
start_origin "$ORIGIN"
start_nginx_proxy "$P_NGINX" "$ORIGIN"
start_haproxy "$P_HAPROXY" "$ORIGIN"

P_REDIS=$((BASE_PORT + 40))
start_redis() {
  redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning --dir "$WORK" \
    --logfile "$WORK/redis.log" &
  PIDS+=($!)
  REDIS_PID=$!
  for _ in $(seq 1 100); do redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
start_redis

# Loopback is exempt by default: allow another network so that wrk is judged like any
# client, under a per-prefix limit (shared in a fleet) that it never reaches.
judged() {
  printf '[shield]\nallow = ["192.0.2.1/32"]\n[shield.connections]\nnew_per_second = { rate = 1000000, burst = 1000000 }\n'
  printf '[shield.rate]\nper_address = { rate = 1000000, burst = 1000000 }\nper_prefix = { rate = 1000000, burst = 1000000 }\n'
}
# Browsers' headers: a request with none looks like LOIC to the shield.
WRK_EXTRA=(-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
  -H 'Accept: text/html' -H 'Accept-Language: en' -H 'Accept-Encoding: identity')
P_ALONE=$P_HOLDFAST
P_FLEET=$((BASE_PORT + 7))
{ holdfast_config "$P_ALONE" "$P_ADMIN" "$ORIGIN" false; judged; } > "$WORK/alone.toml"
{ holdfast_config "$P_FLEET" "$((BASE_PORT + 8))" "$ORIGIN" false; judged
  printf '[fleet]\nredis = "redis://127.0.0.1:%s/0"\ninstance = "bench"\n' "$P_REDIS"; } > "$WORK/fleet.toml"
RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/alone.toml" & PIDS+=($!); ALONE_PID=$!
RUST_LOG=error "$HOLDFAST" run --workers 1 --config "$WORK/fleet.toml" & PIDS+=($!); FLEET_PID=$!
wait_serving "$ORIGIN" "$P_NGINX" "$P_HAPROXY" "$P_ALONE" "$P_FLEET"
nginx_worker=$(pgrep -P "$NGINX_MASTER" | head -n1)
redis_up() { curl -fs "http://127.0.0.1:$((BASE_PORT + 8))/metrics" | awk '$1 == "holdfast_fleet_redis_up" {print $2}'; }
wait_redis_up() { # wait_redis_up 0|1
  for _ in $(seq 1 100); do [ "$(redis_up)" = "$1" ] && return; sleep 0.1; done
  echo "holdfast_fleet_redis_up never became $1" >&2; exit 1
}
wait_redis_up 1

echo "fleet cost: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  measure nginx "$P_NGINX" "$nginx_worker" "$round"
  measure haproxy "$P_HAPROXY" "$HAPROXY_PID" "$round"
  measure alone "$P_ALONE" "$ALONE_PID" "$round"
  measure healthy "$P_FLEET" "$FLEET_PID" "$round"
  kill -STOP "$REDIS_PID"; wait_redis_up 0
  measure frozen "$P_FLEET" "$FLEET_PID" "$round"
  kill -CONT "$REDIS_PID"; wait_redis_up 1
  kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; wait_redis_up 0
  measure gone "$P_FLEET" "$FLEET_PID" "$round"
  start_redis; wait_redis_up 1
done
# (summary's last lines compare "holdfast" with the others; here the fleet's cases are compared
# with holdfast alone below.)
summary nginx haproxy alone healthy frozen gone
echo
for name in healthy frozen gone; do
  echo "fleet ($name)/alone: req/s $(ratio "${M_RPS[$name]}" "${M_RPS[alone]}")x  p99 $(ratio "${M_P99[$name]}" "${M_P99[alone]}")x"
done

# Redis commands per second against the request rate.
echo
commands() { redis-cli -p "$P_REDIS" info stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" {print $2}'; }
for c in 1 "$CONNS"; do
  before=$(commands)
  out=$(wrk -t1 -c"$c" -d"${DURATION}s" -H 'Host: bench.local' "${WRK_EXTRA[@]}" "http://127.0.0.1:$P_FLEET/")
  after=$(commands)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  # (redis-cli's own INFO calls are two commands.)
  printf "wrk -c%-3s %10s req/s   Redis: %6.1f commands/s\n" "$c" "$rps" "$(awk -v a="$before" -v b="$after" -v d="$DURATION" 'BEGIN { print (b - a - 1) / d }')"
done
