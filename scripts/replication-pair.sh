#!/bin/bash
# One row of `bench replication` by hand, so the servers and the client can
# be different binaries (old/new A/B with one client) and a profiler can be
# attached: starts a master (`standalone`, ROLE) and a slave (`broker`,
# haMasterAddress) like `bench replication` does, runs
# `bench produce -w 64 -d DUR --size 1024` against them, stops both.
#
#   scripts/replication-pair.sh SERVER_BIN ROLE DUR [HOOK]
#   CLIENT=other/actormq scripts/replication-pair.sh old/actormq SYNC_MASTER 8
#
# HOOK is a shell command run in the background during the row, with MPID
# and SPID (master and slave pids) exported, e.g.
#   'sleep 2; perf record -e sched:sched_switch -g -p $MPID,$SPID -o sw.data -- sleep 3'
set -u
BIN=$1; ROLE=$2; DUR=$3; HOOK=${4:-}
D=$(mktemp -d /tmp/replication-pair.XXXX)
NS=$((20000 + RANDOM % 10000)); BP=$((NS+1)); HA=$((NS+2)); SP=$((NS+3))
SEG=$((256<<20))
printf "brokerName=bench-rep\nbrokerRole=%s\nhaListenPort=%s\nmapedFileSizeCommitLog=%s\nbrokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n" \
  "$ROLE" $HA $SEG > $D/master.conf
printf "brokerName=bench-rep\nbrokerRole=SLAVE\nbrokerId=1\nhaMasterAddress=127.0.0.1:%s\nmapedFileSizeCommitLog=%s\nbrokerIP1=127.0.0.1\nlistenAddr=127.0.0.1\n" \
  $HA $SEG > $D/slave.conf
ACTORMQ_LOG=warn $BIN standalone --namesrv-port $NS --broker-port $BP --store $D/m -c $D/master.conf > $D/master.log 2>&1 &
MPID=$!
trap 'kill $MPID ${SPID:-} 2>/dev/null; wait 2>/dev/null; rm -rf $D' EXIT
sleep 1.5
ACTORMQ_LOG=warn $BIN broker -c $D/slave.conf -n 127.0.0.1:$NS --port $SP --store $D/s > $D/slave.log 2>&1 &
SPID=$!
sleep 2
export MPID SPID
HP=
if [ -n "$HOOK" ]; then bash -c "$HOOK" & HP=$!; fi
${CLIENT:-$BIN} bench produce -n 127.0.0.1:$NS -t BenchReplication -w 64 -d $DUR --size 1024 2>&1 | grep -v '^\['
if [ -n "$HP" ]; then wait $HP; fi
grep -h -E "WARN|ERROR" $D/master.log $D/slave.log | head -5
