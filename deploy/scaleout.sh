#!/usr/bin/env bash
# Scale-out test, with no Docker: a throwaway PostgreSQL 15 cluster, the
# Temporal schemas made by the server's own SQL tool, a real Temporal server
# process on them, an S3 server (versitygw) with a bucket with object lock,
# two worker processes sharing that bucket as their recovery-point store,
# and `starter load` driving ITEMS items through their lifecycle while one
# worker is killed with SIGKILL. Everything listens on 127.0.0.1 and is
# stopped and removed at the end, failed or not.
#
#   deploy/scaleout.sh                 # 200 items, 20 s window
#   ITEMS=1000 WINDOW=1m deploy/scaleout.sh
#
# MODE=scale runs `starter scale` instead, on the same cluster with the
# default 14-day window and no worker killed: ITEMS (default 10000) items
# protected in one vault, a burst of BURST (2000) deletes with the guard off,
# GUARDED (200) with it on; it reports the workers' memory and the size of
# both databases.
#   MODE=scale deploy/scaleout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-load}
if [ "$MODE" = scale ]; then ITEMS=${ITEMS:-10000}; else ITEMS=${ITEMS:-200}; fi
BURST=${BURST:-2000}
GUARDED=${GUARDED:-200}
WINDOW=${WINDOW:-20s}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${PG_PORT:-55432}
PORT_BASE=${PORT_BASE:-17230}   # frontend PORT_BASE+3, the other services nearby
FRONTEND=127.0.0.1:$((PORT_BASE + 3))
TEMPORAL=${TEMPORAL:-$(command -v temporal || echo "$(go env GOPATH)/bin/temporal")}
VERSITYGW=${VERSITYGW:-$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")}
S3_PORT=${S3_PORT:-$((PORT_BASE + 30))}

[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 is not installed at $PG_BIN (apt-get install postgresql-15)"; exit 1; }
[ -x "$TEMPORAL" ] || { echo "the Temporal CLI is missing: go install github.com/temporalio/cli/cmd/temporal@v1.5.1"; exit 1; }
[ -x "$VERSITYGW" ] || { echo "versitygw is missing: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"; exit 1; }

work=$(mktemp -d /tmp/recoveryvault-scaleout.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -f "$work/pg/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1
  if [ "$status" -ne 0 ]; then
    echo "scale-out test FAILED (exit $status); the last lines of each log:"
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# initdb and postgres refuse to run as root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

echo "== building the server, its SQL tool, the worker and the starter"
mkdir -p "$work/bin"
go build -o "$work/bin/temporal-server" go.temporal.io/server/cmd/server
go build -o "$work/bin/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
go build -o "$work/bin/worker" ./worker
go build -o "$work/bin/starter" ./starter
go build -o "$work/bin/bucket" ./deploy/bucket
schema="$(go list -m -f '{{.Dir}}' go.temporal.io/server)/schema/postgresql/v12"

echo "== PostgreSQL 15 on 127.0.0.1:$PG_PORT"
mkdir "$work/pg" && touch "$work/pg.log"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/pg.log"
as_postgres "$PG_BIN/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 >"$work/initdb.log"
as_postgres "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $work/pg -c max_connections=200" start >/dev/null
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE USER temporal WITH PASSWORD 'temporal' CREATEDB"

echo "== Temporal schemas, as the admin-tools job makes them"
for db in temporal temporal_visibility; do
  dir=temporal; [ "$db" = temporal_visibility ] && dir=visibility
  sql() { "$work/bin/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$PG_PORT" -u temporal --pw temporal --db "$db" "$@"; }
  { sql create && sql setup-schema -v 0.0 && sql update-schema -d "$schema/$dir/versioned"; } >>"$work/schema.log" 2>&1
done

echo "== Temporal server on $FRONTEND"
sed -e "s/@PG_PORT@/$PG_PORT/g" -e "s|@DYNAMIC@|$PWD/deploy/dynamicconfig/recoveryvault.yaml|" \
  -e "s/@FRONTEND@/$((PORT_BASE + 3))/; s/@HISTORY@/$((PORT_BASE + 4))/; s/@MATCHING@/$((PORT_BASE + 5))/; s/@WORKER@/$((PORT_BASE + 9))/" \
  -e "s/@M_FRONTEND@/$((PORT_BASE + 13))/; s/@M_HISTORY@/$((PORT_BASE + 14))/; s/@M_MATCHING@/$((PORT_BASE + 15))/; s/@M_WORKER@/$((PORT_BASE + 19))/" \
  deploy/scaleout-temporal.yaml >"$work/temporal.yaml"
"$work/bin/temporal-server" --config-file "$work/temporal.yaml" --allow-no-auth start >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do "$TEMPORAL" operator cluster health --address "$FRONTEND" >/dev/null 2>&1 && break; sleep 1; done
"$TEMPORAL" operator cluster health --address "$FRONTEND" >/dev/null
"$TEMPORAL" operator namespace create --address "$FRONTEND" --namespace default --retention 72h >/dev/null
export TEMPORAL_ADDRESS=$FRONTEND TEMPORAL_NAMESPACE=default

echo "== S3 (versitygw) on 127.0.0.1:$S3_PORT, bucket backups with object lock"
mkdir -p "$work/s3/data" "$work/s3/versions"
export AWS_ACCESS_KEY_ID=scaleout AWS_SECRET_ACCESS_KEY=scaleout-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$S3_PORT
"$VERSITYGW" --port "127.0.0.1:$S3_PORT" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --quiet \
  posix --versioning-dir "$work/s3/versions" "$work/s3/data" >"$work/s3.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$work/bin/bucket" create backups >/dev/null 2>&1 && break; sleep 0.2; done
[ "$("$work/bin/bucket" count backups "")" = 0 ]

export RECOVERYVAULT_REPOSITORY_PASSWORD=scaleout-repository-password
# The starter's load makes its sources in the temporary directory.
export RECOVERYVAULT_SOURCE_ROOTS="${TMPDIR:-/tmp}" RECOVERYVAULT_RESTORE_ROOTS="$work/restores"
window=(--load-test --soft-delete-retention "$WINDOW")
[ "$MODE" = scale ] && window=()
echo "== two workers sharing s3://backups/scaleout, soft-delete window ${window[2]:-of 14 days}"
workers=()
for n in 1 2; do
  "$work/bin/worker" "${window[@]}" --store s3://backups/scaleout \
    --data-dir "$work/worker$n" >"$work/worker$n.log" 2>&1 &
  pids+=($!)
  workers+=($!)
  [ "$n" = 1 ] && doomed=$!
done
for _ in $(seq 60); do grep -q "Recovery Vault worker:" "$work/worker1.log" "$work/worker2.log" 2>/dev/null && break; sleep 1; done

if [ "$MODE" = scale ]; then
  echo "== scale: $ITEMS items in one vault, $BURST deletes with the guard off, $GUARDED with it on"
  "$work/bin/starter" scale --items "$ITEMS" --burst "$BURST" --guarded "$GUARDED" --vault scaleout \
    --settle 60m --worker-pid "${workers[0]}" 2>"$work/scale-progress.log" | tee "$work/scale.out"
  for pid in "${workers[@]}"; do
    echo "  worker $pid          $(awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%d MiB resident now, %d MiB at most", r/1024, h/1024}' "/proc/$pid/status")"
  done
  size=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
    "SELECT pg_database_size('temporal') / 1048576 || ' MiB (temporal), ' || pg_database_size('temporal_visibility') / 1048576 || ' MiB (temporal_visibility)'")
  echo "  PostgreSQL           $size"
  echo "  bucket               $("$work/bin/bucket" count backups scaleout/) objects, versions and markers"
  exit 0
fi

echo "== load: $ITEMS items; worker 1 is killed with SIGKILL once a quarter are purged"
"$work/bin/starter" load --items "$ITEMS" --vault scaleout --concurrency 20 --timeout 15m \
  --baseline --window "$WINDOW" >"$work/load.out" 2>"$work/load-progress.log" &
load=$!
pids+=("$load")
killed=""
while kill -0 "$load" 2>/dev/null; do
  purged=$("$TEMPORAL" workflow count --query "WorkflowType = 'BackupItem' AND ExecutionStatus = 'Completed'" 2>/dev/null | awk '{print $NF}')
  if [ "${purged:-0}" -ge $((ITEMS / 4)) ]; then
    kill -KILL "$doomed"
    killed=yes
    echo "   worker 1 (pid $doomed) killed with SIGKILL after $purged items were purged"
    break
  fi
  sleep 1
done
load_status=0
wait "$load" || load_status=$?
cat "$work/load.out"
[ "$load_status" -eq 0 ] || { echo "the load failed"; exit 1; }
[ -n "$killed" ] || { echo "the load ended before worker 1 could be killed: raise ITEMS"; exit 1; }

left=$("$work/bin/bucket" count backups scaleout/)
if [ "$left" -ne 0 ]; then
  echo "the bucket still holds $left objects, versions or delete markers of purged items"
  exit 1
fi
echo "== scale-out test passed: every item purged once, no undeleted point lost, no purged data left"
