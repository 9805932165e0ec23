#!/usr/bin/env bash
# Runs the measurements behind docs/performance.md on this machine, in one
# go, so every ratio comes from the same run. Builds the release binary once.
#   scripts/perf.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/perf}"
mkdir -p "$OUT"
cargo build --release --bin actormq
BIN="$PWD/target/release/actormq"
BASE=$(mktemp -d)
trap 'pkill -f "$BIN" || true; rm -rf "$BASE"' EXIT

start() { # name port_ns port_broker extra_conf
  local d="$BASE/$1"; mkdir -p "$d"; printf "%b" "${4:-}" > "$d/broker.conf"
  ACTORMQ_LOG=warn "$BIN" standalone -c "$d/broker.conf" --namesrv-port "$2" --broker-port "$3" --store "$d/store" > "$d/log" 2>&1 &
  echo $! > "$d/pid"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$3") 2>/dev/null && break; sleep 0.1; done
}
stop() { kill "$(cat "$BASE/$1/pid")" 2>/dev/null || true; sleep 1; }
rss() { grep -E "^(VmRSS|RssAnon|RssFile)" "/proc/$(cat "$BASE/$1/pid")/status" | tr -s ' \t\n' ' '; }

echo "## machine"; nproc; uname -r; grep "model name" /proc/cpuinfo | head -1
echo "## async suite"
start async 19901 20901
echo "idle: $(rss async)"
"$BIN" bench suite -n 127.0.0.1:19901 -d 8 --json "$OUT/suite-async.json" 2>/dev/null
echo "after load: $(rss async)"
# A peer in the same run, when given: any RocketMQ-compatible name server
# and broker binaries that take RocketMQ's `--listenPort` and `-c
# broker.conf` arguments (as Apache RocketMQ's and rocketmq-rust's do):
#   PEER_NAMESRV=/path/to/namesrv PEER_BROKER=/path/to/broker scripts/perf.sh
# Nothing of the peer is part of this repository.
if [ -n "${PEER_NAMESRV:-}" ] && [ -n "${PEER_BROKER:-}" ]; then
  echo "## peer: the same suite against $(basename "$PEER_BROKER")"
  stop async
  P="$BASE/peer"; mkdir -p "$P/store"
  printf "brokerClusterName=PeerCluster\nbrokerName=peer-a\nbrokerId=0\nlistenPort=20906\nnamesrvAddr=127.0.0.1:19906\nbrokerIP1=127.0.0.1\nstorePathRootDir=%s\nstorePathCommitLog=%s\nautoCreateTopicEnable=true\nflushDiskType=ASYNC_FLUSH\n" \
    "$P/store" "$P/store/commitlog" > "$P/broker.conf"
  # rocketmq-rust wants ROCKETMQ_HOME; logging at warn, as ActorMQ runs here.
  mkdir -p "$P/home/conf"
  export ROCKETMQ_HOME="$P/home" RUST_LOG=warn
  (cd "$P" && exec "$PEER_NAMESRV" --listenPort 19906 > ns.log 2>&1) & echo $! > "$P/ns.pid"
  sleep 2
  (cd "$P" && exec "$PEER_BROKER" -c "$P/broker.conf" > broker.log 2>&1) & echo $! > "$P/pid"
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/20906) 2>/dev/null && break; sleep 0.1; done
  sleep 5 # first registration with the name server
  echo "peer idle: broker $(rss peer); name server $(grep VmRSS "/proc/$(cat "$P/ns.pid")/status" | tr -s ' \t' ' ')"
  "$BIN" bench suite -n 127.0.0.1:19906 -d 8 --json "$OUT/suite-peer.json" 2>/dev/null
  echo "peer after load: broker $(rss peer)"
  kill "$(cat "$P/ns.pid")" 2>/dev/null || true
  stop peer
  start async 19901 20901
fi

echo "## cost curves"
"$BIN" bench curves -n 127.0.0.1:19901 -d 3 --json "$OUT/curves.json" 2>/dev/null
stop async

echo "## SYNC_FLUSH"
start sync 19902 20902 "flushDiskType=SYNC_FLUSH\n"
"$BIN" bench echo -w 64 -d 5 2>/dev/null | tail -1
"$BIN" bench produce -n 127.0.0.1:19902 -w 1 -d 5 2>/dev/null | tail -1
"$BIN" bench produce -n 127.0.0.1:19902 -w 64 -d 8 2>/dev/null | tail -1
stop sync

echo "## route lookup (1000 topics x 8 queues x 10 brokers)"
start routes 19903 20903
"$BIN" bench routes -n 127.0.0.1:19903 --topics 1000 --brokers 10 --queues 8 -d 5 2>/dev/null | tail -1
echo "name server + broker after 10 registrations: $(rss routes)"
stop routes

echo "## memory vs topics and connections"
start mem 19904 20904
echo "0 topics: $(rss mem)"
for i in $(seq 1000); do
  "$BIN" admin updateTopic -n 127.0.0.1:19904 -b 127.0.0.1:20904 -t "MemTopic$i" -r 8 -w 8 > /dev/null 2>&1
done
echo "1000 topics x 8 queues: $(rss mem)"
python3 - <<'PY' &
import socket, time
conns = [socket.create_connection(("127.0.0.1", 20904)) for _ in range(256)]
time.sleep(6)
PY
py=$!
sleep 4
echo "1000 topics + 256 idle connections: $(rss mem)"
wait $py
stop mem

echo "## recovery time after kill -9"
for gib in 1 4; do
  start rec$gib 19905 20905 "mapedFileSizeCommitLog=1073741824\n"
  count=$(( gib * 1024 * 1024 ))
  "$BIN" bench produce -n 127.0.0.1:19905 --mode batch --batch 32 -w 4 --count $count 2>/dev/null | tail -1
  kill -9 "$(cat "$BASE/rec$gib/pid")"; sleep 1
  t0=$(date +%s.%N)
  ACTORMQ_LOG=warn "$BIN" standalone --namesrv-port 19905 --broker-port 20905 --store "$BASE/rec$gib/store" > "$BASE/rec$gib/log2" 2>&1 &
  echo $! > "$BASE/rec$gib/pid"
  for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/20905) 2>/dev/null && break; sleep 0.05; done
  t1=$(date +%s.%N)
  echo "recovery of ${gib} GiB commit log after kill -9: $(echo "$t1 - $t0" | bc) s"
  stop rec$gib
  rm -rf "$BASE/rec$gib"
done
