#!/bin/sh
# A failover drill's recovery (`recovery = [...]` in the drill's config):
# the crashed primary comes back as a standby of the promoted one, from a
# fresh pg_basebackup. Run it on the old primary's host.
#
#   pg-rejoin.sh OLD_PRIMARY_DATA NEW_PRIMARY_HOST NEW_PRIMARY_PORT OLD_PRIMARY_PORT
#
# Like the trigger it gets only its argv and must be safe to run twice: a
# cluster that already runs is left alone. Its output's tail is kept in the
# drill's report. PG_CTL and PG_BASEBACKUP name the programs when they are
# not the newest /usr/lib/postgresql/*/bin's; run as root, it acts as the
# `postgres` user. The replication connection needs a pg_hba.conf entry on
# the new primary.
set -eu

data=${1:?usage: pg-rejoin.sh OLD_PRIMARY_DATA NEW_PRIMARY_HOST NEW_PRIMARY_PORT OLD_PRIMARY_PORT}
host=${2:?new primary host}
port=${3:?new primary port}
own_port=${4:?the old primary port}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg_ctl=${PG_CTL:-$bin/pg_ctl}
pg_basebackup=${PG_BASEBACKUP:-$bin/pg_basebackup}
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if as_owner "$pg_ctl" -D "$data" status >/dev/null 2>&1; then
  echo "pg-rejoin: the cluster in $data runs already; nothing to do"
  exit 0
fi
echo "pg-rejoin: rebuilding $data as a standby of $host:$port"
rm -rf "$data"
as_owner "$pg_basebackup" -h "$host" -p "$port" -U postgres -D "$data" -R -X stream
printf 'port = %s\n' "$own_port" | as_owner tee -a "$data/postgresql.conf" >/dev/null
as_owner "$pg_ctl" -D "$data" -l "$data.log" -w start
