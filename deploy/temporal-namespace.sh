#!/bin/sh
# The namespace steward runs in, as its audit trail needs it: closed runs
# kept for STEWARD_RETENTION_DAYS days (the config's [temporal]
# retention_days; the archive keeps them after), and the search
# attributes steward's workflows set (`steward inbox` and the Temporal UI
# query them). Run by the `temporal-namespace` service after the server is
# healthy; idempotent. Needs the `temporal` CLI and TEMPORAL_ADDRESS.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${STEWARD_RETENTION_DAYS:?}"
ns="${STEWARD_NAMESPACE:-default}"
t() { temporal "$@" --address "$TEMPORAL_ADDRESS"; }

until t operator cluster health >/dev/null 2>&1; do sleep 1; done

if t operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  t operator namespace update --namespace "$ns" --retention "${STEWARD_RETENTION_DAYS}d"
else
  t operator namespace create --namespace "$ns" --retention "${STEWARD_RETENTION_DAYS}d"
fi
# A namespace just created takes a moment to be served everywhere.
until t operator search-attribute list --namespace "$ns" >/dev/null 2>&1; do sleep 1; done

# name=type, as proto/src/names.rs declares them (tests/tests/integration/deploy.rs
# holds the two to each other).
for attribute in StewardPhase=Keyword StewardSubject=Keyword StewardWaiting=Bool StewardHostWait=KeywordList; do
  name="${attribute%%=*}"
  type="${attribute#*=}"
  if ! t operator search-attribute list --namespace "$ns" | grep -qw "$name"; then
    t operator search-attribute create --namespace "$ns" --name "$name" --type "$type"
  fi
done
echo "namespace $ns: retention ${STEWARD_RETENTION_DAYS}d, search attributes registered"
