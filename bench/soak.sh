#!/usr/bin/env bash
# The soak: holdfast under mixed traffic for DURATION seconds (default 600; 3600 for a
# release), sampled every 10 s, then judged (docs/benchmarks.md, "The soak").
#
# Traffic, every loop bounded by the run's end:
# - shoppers on HTTP/1.1 (wrk, paced by bench/paced.lua, browser headers) and on HTTP/2 over
#   TLS (curl --http2, several streams per connection), catalogue pages;
# - uploads (1 MiB PUTs, stored by the origin) and large downloads (8 MiB) through a second site;
# - clients that hang up mid-body (HTTP/1.1) and reset their streams (HTTP/2);
# - a thin flood (no User-Agent, a connection per request) from 127.2.0.0/16;
# - the shop's primary data center fails (its origins frozen) for 40 s every 2 minutes;
# - a reload (SIGHUP) every 30 s.
# Sampled: RSS, open file descriptors, threads, and /status.json's in-flight and open
# connection counts. Passes when, after a minute of warm-up, RSS and fds grow less than 5%,
# in-flight counts return to zero when the traffic stops, no shopper request fails, and the
# log holds no panic and no error.
# Usage: bench/soak.sh   (DURATION=3600 bench/soak.sh for a release)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-600}
setup
P_TLS=$((BASE_PORT + 50)); P_FILES=$((BASE_PORT + 51)); P_STATUS=$((BASE_PORT + 52))
P_WEST1=$((BASE_PORT + 53)); P_WEST2=$((BASE_PORT + 54)); P_CENTRAL=$((BASE_PORT + 55))

# Origins: three shops (two in eu-west, one in eu-central), nginx for files and uploads.
declare -a WEST_PIDS=()
for p in "$P_WEST1" "$P_WEST2"; do
  "$HOLDFAST" shop --site shop-de --language de --datacenter eu-west --listen "127.0.0.1:$p" > /dev/null 2>&1 &
  PIDS+=($!); WEST_PIDS+=($!)
done
"$HOLDFAST" shop --site shop-de --language de --datacenter eu-central --listen "127.0.0.1:$P_CENTRAL" > /dev/null 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/files/www"
head -c $((8 * 1024 * 1024)) /dev/urandom > "$WORK/files/www/big.bin"
head -c $((1024 * 1024)) /dev/urandom > "$WORK/upload.bin"
mkdir -p "$WORK/files/www/upload" "$WORK/files/tmp"; chmod 777 "$WORK/files/www/upload" "$WORK/files/tmp"
{ nginx_head "$WORK/files"; cat <<CONF; } > "$WORK/files/nginx.conf"
  client_max_body_size 16m;
  client_body_temp_path $WORK/files/tmp;
  server {
    listen 127.0.0.1:$P_FILES;
    root $WORK/files/www;
    location /upload/ { dav_methods PUT; }
  }
}
CONF
nginx -c "$WORK/files/nginx.conf" -p "$WORK/files" & PIDS+=($!)

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/shop.key" -out "$WORK/shop.crt" -days 2 \
  -subj "/CN=shop.test" -addext "subjectAltName=DNS:shop.test,DNS:files.test" 2>/dev/null
cat > "$WORK/soak.toml" <<CONF
[listen]
http = ["127.0.0.1:$P_HOLDFAST"]
https = ["127.0.0.1:$P_TLS"]
admin = "127.0.0.1:$P_ADMIN"
status = "127.0.0.1:$P_STATUS"
[log]
access = false
[timeouts]
connect = "300ms"
origin_response = "5s"
[shield.signatures]
flood_rate = 10
[[datacenter]]
name = "eu-west"
[[datacenter]]
name = "eu-central"
[[site]]
name = "shop-de"
hosts = ["shop.test"]
language = "de"
tls = { cert = "$WORK/shop.crt", key = "$WORK/shop.key" }
  [site.health]
  interval = "500ms"
  timeout = "300ms"
  [[site.pool]]
  datacenter = "eu-west"
  origins = ["127.0.0.1:$P_WEST1", "127.0.0.1:$P_WEST2"]
  [[site.pool]]
  datacenter = "eu-central"
  origins = ["127.0.0.1:$P_CENTRAL"]
[[site]]
name = "files"
hosts = ["files.test"]
tls = { cert = "$WORK/shop.crt", key = "$WORK/shop.key" }
  [site.health]
  path = "/big.bin"
  [site.cache]
  enabled = false
  [[site.pool]]
  datacenter = "eu-central"
  origins = ["127.0.0.1:$P_FILES"]
CONF
"$HOLDFAST" run --workers 2 --config "$WORK/soak.toml" --log-format json > "$WORK/holdfast.log" 2>&1 &
PIDS+=($!); GW=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$P_ADMIN/healthz" && break; sleep 0.1; done

START=$(date +%s); END=$((START + DURATION))
BROWSER=(-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
  -H 'Accept: text/html' -H 'Accept-Language: de' -H 'Cookie: cart=1')
RESOLVE=(--resolve "shop.test:$P_TLS:127.0.0.1" --resolve "files.test:$P_TLS:127.0.0.1")
RESULTS=$WORK/results; mkdir -p "$RESULTS"

# HTTP/1.1 shoppers: 8 connections, each request then 50 ms (about 150 requests a second).
wrk -t1 -c8 -d"${DURATION}s" -s bench/paced.lua -H 'Host: shop.test' "${BROWSER[@]}" \
  "http://127.0.0.1:$P_HOLDFAST/" > "$RESULTS/wrk.txt" 2>&1 &
TRAFFIC=($!)
# HTTP/2 shoppers over TLS: four pages on one connection, twice a second.
( while [ "$(date +%s)" -lt "$END" ]; do
    curl -sk --http2 -Z "${RESOLVE[@]}" "${BROWSER[@]}" -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
      -w '%{http_version} %{http_code}\n' "https://shop.test:$P_TLS/p/"{1,2,3,4} >> "$RESULTS/h2.txt" 2>/dev/null || true
    sleep 0.5
  done ) & TRAFFIC+=($!)
# Uploads and large downloads, HTTP/1.1 and HTTP/2.
( while [ "$(date +%s)" -lt "$END" ]; do
    # Uploads (PUT, which the origin stores whole before it answers), HTTP/2 and HTTP/1.1.
    curl -sk --http2 "${RESOLVE[@]}" -o /dev/null -w '%{http_code}\n' -T "$WORK/upload.bin" \
      "https://files.test:$P_TLS/upload/h2" >> "$RESULTS/files.txt" 2>/dev/null || true
    curl -s -H 'Host: files.test' -o /dev/null -w '%{http_code}\n' -T "$WORK/upload.bin" \
      "http://127.0.0.1:$P_HOLDFAST/upload/h1" >> "$RESULTS/files.txt" 2>/dev/null || true
    curl -s -H 'Host: files.test' "${BROWSER[@]}" -o /dev/null -w '%{http_code} %{size_download}\n' \
      "http://127.0.0.1:$P_HOLDFAST/big.bin" >> "$RESULTS/files.txt" 2>/dev/null || true
    curl -sk --http2 "${RESOLVE[@]}" "${BROWSER[@]}" -o /dev/null -w '%{http_code} %{size_download}\n' \
      "https://files.test:$P_TLS/big.bin" >> "$RESULTS/files.txt" 2>/dev/null || true
    sleep 1
  done ) & TRAFFIC+=($!)
# Clients that give up: hang up mid-download (HTTP/1.1), reset the stream (HTTP/2).
( while [ "$(date +%s)" -lt "$END" ]; do
    curl -s -m 0.05 -H 'Host: files.test' --limit-rate 200k -o /dev/null "http://127.0.0.1:$P_HOLDFAST/big.bin" 2>/dev/null || true
    curl -sk --http2 -m 0.05 "${RESOLVE[@]}" --limit-rate 200k -o /dev/null "https://files.test:$P_TLS/big.bin" 2>/dev/null || true
    sleep 0.5
  done ) & TRAFFIC+=($!)
# A thin flood: LOIC-like requests from many loopback addresses, about 20 a second.
( i=0; while [ "$(date +%s)" -lt "$END" ]; do
    i=$((i + 1))
    curl -s -m 1 --interface "127.2.$((i / 250 % 250)).$((i % 250 + 1))" -A '' -H 'Host: shop.test' \
      -o /dev/null "http://127.0.0.1:$P_HOLDFAST/checkout$RANDOM" 2>/dev/null || true
    sleep 0.05
  done ) & TRAFFIC+=($!)
# The primary data center fails for 40 s every two minutes; a reload every 30 s.
( n=0; while [ "$(date +%s)" -lt "$END" ]; do
    sleep 10; n=$((n + 10))
    if [ $((n % 120)) = 60 ]; then kill -STOP "${WEST_PIDS[@]}"; echo "$(($(date +%s) - START)) eu-west fails" >> "$RESULTS/events.txt"; fi
    if [ $((n % 120)) = 100 ]; then kill -CONT "${WEST_PIDS[@]}"; echo "$(($(date +%s) - START)) eu-west recovers" >> "$RESULTS/events.txt"; fi
    if [ $((n % 30)) = 0 ]; then kill -HUP "$GW"; fi
  done; kill -CONT "${WEST_PIDS[@]}" ) & TRAFFIC+=($!)

sample() {
  local t=$(($(date +%s) - START))
  local rss fds threads st
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$GW/status")
  fds=$(ls "/proc/$GW/fd" | wc -l)
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$GW/status")
  st=$(curl -fs "http://127.0.0.1:$P_ADMIN/status.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["requests"]["in_flight"], d["open_connections"])')
  echo "$t $rss $fds $threads $st" >> "$RESULTS/samples.txt"
}
echo "# t rss_kib fds threads in_flight open_connections" > "$RESULTS/samples.txt"
echo "soak: ${DURATION}s, sampling every 10 s"
while [ "$(date +%s)" -lt "$END" ]; do sample; sleep 10; done
wait "${TRAFFIC[@]}" 2>/dev/null || true
# The traffic has stopped: in-flight counts return to zero.
for _ in $(seq 1 60); do
  st=$(curl -fs "http://127.0.0.1:$P_ADMIN/status.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["requests"]["in_flight"])')
  [ "$st" = 0 ] && break; sleep 0.5
done
sample
cp "$WORK/holdfast.log" "$RESULTS/holdfast.log"
mkdir -p "${SOAK_OUT:-/tmp/holdfast-soak}"; cp -r "$RESULTS" "${SOAK_OUT:-/tmp/holdfast-soak}/raw"
python3 bench/soak_report.py "$RESULTS" "${SOAK_OUT:-/tmp/holdfast-soak}"
