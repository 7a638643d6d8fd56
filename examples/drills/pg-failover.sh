#!/bin/sh
# A failover drill's trigger for a PostgreSQL primary and streaming standby
# (docs/OPERATIONS.md §8): the primary fails as on a crash, the standby is
# promoted. Run it on the host of both clusters' data, or give it the
# standby's only and crash the primary by other means first.
#
#   pg-failover.sh STANDBY_DATA [PRIMARY_DATA]
#
# steward runs the trigger once per drill, with the argv the config gives
# (`trigger = ["/usr/local/sbin/pg-failover.sh", "/srv/pg/standby",
# "/srv/pg/primary"]`), no stdin and no other input, and counts it done when
# it exits 0; a retry after a worker crash finds it done in the drill's log
# and does not run it again. It must still be safe to run twice: this one
# stops only a primary that runs and promotes only a standby that is one.
# PG_CTL names pg_ctl when it is not the newest /usr/lib/postgresql/*/bin's;
# run as root, it acts as the `postgres` user.
set -eu

standby=${1:?usage: pg-failover.sh STANDBY_DATA [PRIMARY_DATA]}
primary=${2:-}

pg_ctl=${PG_CTL:-$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)}
[ -x "$pg_ctl" ] || { echo "pg-failover: pg_ctl not found; set PG_CTL" >&2; exit 2; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -n "$primary" ] && as_owner "$pg_ctl" -D "$primary" status >/dev/null 2>&1; then
  echo "pg-failover: stopping the primary in $primary as on a crash (-m immediate)"
  as_owner "$pg_ctl" -D "$primary" -m immediate -w stop
fi
if [ -f "$standby/standby.signal" ]; then
  echo "pg-failover: promoting the standby in $standby"
  as_owner "$pg_ctl" -D "$standby" -w promote
else
  echo "pg-failover: $standby is no standby (promoted already)"
fi
