#!/bin/sh
# The Temporal cluster's databases on the compose PostgreSQL: the main
# store and the visibility store, created and brought to the schema of the
# server image. Run by the `temporal-setup` service (admin-tools image)
# before the server starts; idempotent, so every `docker compose up` runs it.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
export SQL_PASSWORD="$POSTGRES_PWD"
port="${DB_PORT:-5432}"
schemas=/etc/temporal/schema/postgresql/v12

until nc -z "$POSTGRES_SEEDS" "$port"; do sleep 1; done

for db in temporal temporal_visibility; do
  case "$db" in
    temporal) dir="$schemas/temporal/versioned" ;;
    *) dir="$schemas/visibility/versioned" ;;
  esac
  sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" --db "$db" "$@"; }
  sql create-database || true
  sql setup-schema -v 0.0
  sql update-schema -d "$dir"
done
