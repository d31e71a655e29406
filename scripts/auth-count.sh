#!/usr/bin/env bash
# Instructions per put with auth off, as a certificate (CN) user and as a password (token) user, counted
# by callgrind (load-independent, unlike ops/s on a shared machine). One cairn member under
# `valgrind --tool=callgrind`, mutual TLS, driven through its JSON gateway by one curl process that
# keeps its connection (the gateway calls the same gRPC services, so the auth guard is the same).
# Each phase is counted between `callgrind_control --zero` and `--dump`; the member's idle
# instructions per second (Raft ticks, timers) are counted the same way and subtracted.
#
#   scripts/auth-count.sh [CAIRN_BINARY] [PUTS]     e.g. scripts/auth-count.sh target/debug/cairn 300
set -euo pipefail
cairn=$(realpath "${1:-target/debug/cairn}")
puts=${2:-300}
work=$(mktemp -d /tmp/auth-count.XXXXXX)
port=$((20000 + RANDOM % 20000))
peer=$((port + 1))
url="https://127.0.0.1:$port"
cd "$work"

# PKI: a CA, the member's certificate for 127.0.0.1, a client certificate with CN admin.
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=auth-count-ca 2>/dev/null
cert() { # name cn ext
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 \
        -extfile "$1.ext" 2>/dev/null
}
cert server server "subjectAltName = IP:127.0.0.1
extendedKeyUsage = serverAuth, clientAuth"
cert admin admin "extendedKeyUsage = clientAuth"

valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$cairn" --name m0 --data-dir "$work/data" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "m0=http://127.0.0.1:$peer" \
    --cert-file server.crt --key-file server.key --trusted-ca-file ca.crt --client-cert-auth \
    --bcrypt-cost 4 >"$work/member.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null || true' EXIT

ctl() { ETCDCTL_API=3 etcdctl --endpoints "$url" --cacert ca.crt --cert admin.crt --key admin.key "$@"; }
for _ in $(seq 300); do ctl endpoint health >/dev/null 2>&1 && break; sleep 1; done
ctl endpoint health >/dev/null 2>&1

# Users as cairn-bench makes them: admin (certificate) may write every key, bench (password) bench/.
ctl user add root:rootpw >/dev/null
ctl user grant-role root root >/dev/null
ctl role add all >/dev/null
ctl role grant-permission all readwrite --from-key '' >/dev/null
ctl user add admin --no-password >/dev/null
ctl user grant-role admin all >/dev/null
ctl role add rw >/dev/null
ctl role grant-permission rw readwrite --prefix bench/ >/dev/null
ctl user add bench:benchpw >/dev/null
ctl user grant-role bench rw >/dev/null

b64() { printf '%s' "$1" | base64 -w0; }
# One curl process, one kept connection, $puts puts of bench/k<i>.
drive() { # extra header line or ""
    local cfg="$work/curl.cfg"
    : >"$cfg"
    for i in $(seq "$puts"); do
        [ "$i" -gt 1 ] && echo next >>"$cfg"
        {
            echo "url = \"$url/v3/kv/put\""
            echo "data = \"{\\\"key\\\":\\\"$(b64 "bench/k$i")\\\",\\\"value\\\":\\\"$(b64 "v$i")\\\"}\""
            echo 'silent'
            echo 'output = "/dev/null"'
            echo 'write-out = "%{http_code} %{num_connects}\n"'
            echo "cacert = ca.crt"
            echo "cert = admin.crt"
            echo "key = admin.key"
            [ -n "$1" ] && echo "header = \"$1\""
        } >>"$cfg"
    done
    # Every put must succeed (200) over one connection (connects counted once).
    curl -K "$cfg" >"$work/codes"
    local ok conns
    ok=$(grep -c '^200 ' "$work/codes" || true)
    conns=$(awk '{s += $2} END {print s}' "$work/codes")
    if [ "$ok" != "$puts" ] || [ "$conns" != 1 ]; then
        echo "auth-count: $ok of $puts puts answered 200, over $conns connections" >&2
        sort "$work/codes" | uniq -c >&2
        exit 1
    fi
}
# Instructions since the last zero (callgrind_control dumps a file per call; its totals line).
count() {
    local before
    before=$(ls "$work"/cg.* | wc -l)
    callgrind_control --dump="$1" "$vg" >/dev/null 2>&1
    for _ in $(seq 100); do [ "$(ls "$work"/cg.* | wc -l)" -gt "$before" ] && break; sleep 0.2; done
    sleep 1
    grep -h '^summary:\|^totals:' $(ls -t "$work"/cg.* | head -1) | head -1 | awk '{print $2}'
}
phase() { # name header
    callgrind_control --zero "$vg" >/dev/null 2>&1
    local t0 t1 ir
    t0=$(date +%s.%N)
    drive "$2"
    t1=$(date +%s.%N)
    ir=$(count "$1")
    echo "$1 $ir $(echo "$t1 - $t0" | bc)"
}

callgrind_control --zero "$vg" >/dev/null 2>&1
sleep 10
idle=$(count idle)
idle_rate=$(echo "$idle / 10" | bc -l)

off=$(phase off "")
ctl auth enable >/dev/null
token=$(curl -s --cacert ca.crt --cert admin.crt --key admin.key -X POST "$url/v3/auth/authenticate" \
    -d '{"name":"bench","password":"benchpw"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
cert=$(phase cert "")
tok=$(phase token "Authorization: $token")

echo "binary $cairn, $puts puts per phase, idle $(printf '%.0f' "$idle_rate") instructions/s"
echo "| phase | instructions | seconds | per put, net of idle | ÷ auth off |"
echo "|---|---:|---:|---:|---:|"
base=""
for line in "$off" "$cert" "$tok"; do
    read -r name ir secs <<<"$line"
    net=$(echo "($ir - $idle_rate * $secs) / $puts" | bc -l)
    [ -z "$base" ] && base=$net
    printf '| %s | %s | %.1f | %.0f | %.4f |\n' "$name" "$ir" "$secs" "$net" "$(echo "$net / $base" | bc -l)"
done
ctl --user root:rootpw auth disable >/dev/null || true
