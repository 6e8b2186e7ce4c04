#!/usr/bin/env python3
"""p50/p95 server time of each URL over 200 sequential requests (after 5 warm-ups)."""
import http.client, sys, time, urllib.parse

for url in sys.argv[1:]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    path = u.path + (f"?{u.query}" if u.query else "")
    times, size = [], 0
    for i in range(205):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"{url}: HTTP {r.status}")
        if i >= 5:
            times.append((time.perf_counter() - t) * 1000)
        size = len(body)
    times.sort()
    print(f"{path:<45} p50 {times[99]:6.1f} ms  p95 {times[189]:6.1f} ms  ({size/1024:.0f} KiB HTML)")
