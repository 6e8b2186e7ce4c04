#!/usr/bin/env bash
# What authentication costs per request: the same reads in local mode (no accounts), in team
# mode with a session cookie, and with an API token (each resolves the principal, its roles and
# the open projects, then filters by project).
#   tests/bench/auth/run.sh
# Prints, per mode and path, wrk's requests/s and p50/p99 over 10 s with 50 connections.
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} (cargo build --release -p caplens-server).
set -euo pipefail
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-auth-bench.XXXXXX")"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export DATABASE_URL= CAPLENS_LOG=warn
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
start() {
  "$caplens" serve --data-dir "$work/data" --addr "127.0.0.1:$port" --no-worker >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 300); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.2; done
}
bench() { # label, header or "", path
  local label="$1" header="$2" path="$3"
  local args=(-t2 -c50 -d10s --latency)
  [ -n "$header" ] && args+=(-H "$header")
  local out
  out=$(wrk "${args[@]}" "$url$path")
  printf '%-8s %-40s %10s req/s  p50 %8s  p99 %8s%s\n' "$label" "$path" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(grep -q Non-2xx <<<"$out" && echo "  (non-2xx: $(awk '/Non-2xx/ {print $4}' <<<"$out"))")"
}
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); binary $caplens"
paths=(/api/v1/experiments /api/v1/experiments/demo-rlvr-boundary/summary /experiments/demo-rlvr-boundary)

start
for p in "${paths[@]}"; do bench local "" "$p"; done
kill "$server"; wait "$server" 2>/dev/null || true; server=""

# Team mode: a user who reads the demo (open project) and is editor of "team"; a session and a token.
echo "a long enough password" | "$caplens" user create bench --data-dir "$work/data" >/dev/null 2>&1
"$caplens" project create team --data-dir "$work/data" >/dev/null 2>&1
"$caplens" project add-member team bench --role editor --data-dir "$work/data" >/dev/null 2>&1
token=$("$caplens" token create bench --user bench --project demo --scope read --data-dir "$work/data" 2>/dev/null || true)
start
cookie=$(curl -s -D - -o /dev/null -H "Origin: $url" --data 'name=bench&password=a+long+enough+password' "$url/auth/login" | awk -F'[:;] *' 'tolower($1)=="set-cookie" {print $2}')
for p in "${paths[@]}"; do bench session "Cookie: $cookie" "$p"; done
if [ -n "$token" ]; then
  for p in "${paths[@]}"; do bench token "Authorization: Bearer $token" "$p"; done
fi
