#!/usr/bin/env python3
"""Judges a soak run (bench/soak.sh): memory and file descriptors flat after the warm-up,
in-flight counts back to zero, no shopper request failed, no panic or error in the log.
Writes summary.md and soak.svg (RSS and fds over time, data-center failures shaded) into
OUT, prints the summary, and exits 1 when the run fails."""
import json, os, re, sys

res, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
rows = []
for line in open(os.path.join(res, "samples.txt")):
    if line.startswith("#") or not line.strip():
        continue
    t, rss, fds, threads, inflight, conns = line.split()
    rows.append(dict(t=int(t), rss=int(rss), fds=int(fds), threads=int(threads), inflight=int(inflight), conns=int(conns)))
during, final = rows[:-1], rows[-1]
warm = [r for r in during if r["t"] >= 60] or during
def mean(xs): return sum(xs) / max(len(xs), 1)
def growth(key):
    # A sample holds whatever is in flight at that moment (8 MiB downloads, say), so single
    # samples differ by several percent: compare the first third of the samples after the
    # warm-up with the last third, and take the least-squares trend over the run too.
    n = max(len(warm) // 3, 1)
    first, last = mean([r[key] for r in warm[:n]]), mean([r[key] for r in warm[-n:]])
    ts, vs = [r["t"] for r in warm], [r[key] for r in warm]
    mt, mv = mean(ts), mean(vs)
    var = sum((t - mt) ** 2 for t in ts) or 1
    slope = sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / var
    trend = slope * (ts[-1] - ts[0]) / mv * 100 if mv else 0.0
    return max((last - first) / first * 100 if first else 0.0, trend), first, last, trend
rss_g, rss_a, rss_b, rss_t = growth("rss")
fds_g, fds_a, fds_b, fds_t = growth("fds")

def statuses(path):
    c = {}
    if os.path.exists(path):
        for m in re.finditer(r"^status (\d+): (\d+)", open(path).read(), re.M):
            c[m.group(1)] = c.get(m.group(1), 0) + int(m.group(2))
    return c
h1 = statuses(os.path.join(res, "wrk.txt"))
h2 = {}
for line in open(os.path.join(res, "h2.txt")) if os.path.exists(os.path.join(res, "h2.txt")) else []:
    k = line.strip()
    h2[k] = h2.get(k, 0) + 1
files_ok = files_bad = 0
for line in open(os.path.join(res, "files.txt")) if os.path.exists(os.path.join(res, "files.txt")) else []:
    p = line.split()
    # Uploads answer 201 or 204 (stored); downloads 200 with all 8 MiB.
    ok = bool(p) and ((len(p) == 1 and p[0] in ("201", "204")) or (len(p) == 2 and p[0] == "200" and p[1] == "8388608"))
    files_ok += ok
    files_bad += not ok
log = open(os.path.join(res, "holdfast.log")).read().splitlines()
bad_log = [l for l in log if "panicked" in l or '"level":"ERROR"' in l]
events = open(os.path.join(res, "events.txt")).read().splitlines() if os.path.exists(os.path.join(res, "events.txt")) else []

h1_fail = sum(v for k, v in h1.items() if k != "200")
h2_fail = sum(v for k, v in h2.items() if k not in ("2 200",))
checks = [
    (f"RSS after warm-up, first third {rss_a/1024:.1f} MiB, last third {rss_b/1024:.1f} MiB ({(rss_b-rss_a)/rss_a*100:+.1f}%), trend over the run {rss_t:+.1f}%", rss_g < 5),
    (f"open fds after warm-up, first third {fds_a:.0f}, last third {fds_b:.0f} ({(fds_b-fds_a)/fds_a*100:+.1f}%), trend over the run {fds_t:+.1f}%", fds_g < 5),
    (f"in flight when the traffic stopped: {final['inflight']}", final["inflight"] == 0),
    (f"HTTP/1.1 shoppers: {sum(h1.values())} requests, statuses {h1}", h1_fail == 0 and sum(h1.values()) > 0),
    (f"HTTP/2 TLS shoppers: {sum(h2.values())} requests, {h2}", h2_fail == 0 and sum(h2.values()) > 0),
    (f"uploads and large downloads: {files_ok} whole, {files_bad} not", files_bad == 0 and files_ok > 0),
    (f"log: {len(log)} lines, {len(bad_log)} with a panic or an error", not bad_log),
]
passed = all(ok for _, ok in checks)
dur = rows[-1]["t"]
lines = [f"Soak of {dur} s, {len(rows)} samples; data-center events: {len(events)}"]
lines += [f"- {'ok  ' if ok else 'FAIL'} {text}" for text, ok in checks]
lines.append("PASSED" if passed else "FAILED")
summary = "\n".join(lines)
open(os.path.join(out, "summary.md"), "w").write(summary + "\n\n" + "\n".join(events) + "\n" + "\n".join(bad_log[:20]) + "\n")
open(os.path.join(out, "samples.txt"), "w").write(open(os.path.join(res, "samples.txt")).read())

# The chart: RSS (MiB, left) and fds (right) against time, failures shaded.
W, H, L, R, T, B = 720, 240, 50, 50, 20, 30
tmax = max(r["t"] for r in rows) or 1
rmax = max(r["rss"] for r in rows) / 1024 * 1.2
fmax = max(r["fds"] for r in rows) * 1.2
x = lambda t: L + (W - L - R) * t / tmax
yr = lambda v: H - B - (H - T - B) * v / rmax
yf = lambda v: H - B - (H - T - B) * v / fmax
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
fails = [int(e.split()[0]) for e in events if "fails" in e]
recovers = [int(e.split()[0]) for e in events if "recovers" in e]
for a in fails:
    b = next((r for r in recovers if r > a), tmax)
    svg.append(f'<rect x="{x(a):.1f}" y="{T}" width="{x(b) - x(a):.1f}" height="{H - T - B}" fill="#fde2e2"/>')
svg.append(f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="#999"/>')
rss_points = " ".join("%.1f,%.1f" % (x(r["t"]), yr(r["rss"] / 1024)) for r in rows)
fds_points = " ".join("%.1f,%.1f" % (x(r["t"]), yf(r["fds"])) for r in rows)
svg.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{rss_points}"/>')
svg.append(f'<polyline fill="none" stroke="#ff7f0e" stroke-width="1.5" points="{fds_points}"/>')
svg.append(f'<text x="{L}" y="14" fill="#1f77b4">RSS, MiB (0 to {rmax:.0f})</text>')
svg.append(f'<text x="{W-R}" y="14" fill="#ff7f0e" text-anchor="end">open fds (0 to {fmax:.0f})</text>')
svg.append(f'<text x="{W/2}" y="{H-8}" text-anchor="middle">seconds (shaded: eu-west failed)</text>')
for t in range(0, tmax + 1, max(60, tmax // 10 // 60 * 60)):
    svg.append(f'<text x="{x(t):.1f}" y="{H-B+12}" text-anchor="middle">{t}</text>')
svg.append("</svg>")
open(os.path.join(out, "soak.svg"), "w").write("\n".join(svg))
print(summary)
print(f"chart: {os.path.join(out, 'soak.svg')}")
sys.exit(0 if passed else 1)
