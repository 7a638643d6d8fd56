#!/bin/sh
# One-shot: the certificates that keep the Temporal frontend private.
#
#   ca.crt / ca.key          the deployment's own CA (ca.key never leaves
#                            this volume's setup: only this script reads it)
#   server.crt / .key        the frontend's certificate, for `temporal`
#                            (and localhost, for a port published to the host)
#   worker.crt / .key        the steward workers' client certificate
#   api.crt / .key           steward api's client certificate
#   admin.crt / .key         the one-shot setups' and the Temporal UI's
#
# The server demands a client certificate signed by ca.crt on every call
# (TEMPORAL_TLS_REQUIRE_CLIENT_AUTH), so only what holds one of these keys
# reaches the frontend. Run again on a folder that has them, it changes
# nothing; remove the folder (the `temporal-certs` volume) to make new ones.
#
#   sh deploy/temporal-certs.sh /certs [days]
set -eu
dir=${1:?usage: temporal-certs.sh DIR [DAYS]}
days=${2:-825}
umask 077
mkdir -p "$dir"
cd "$dir"
if [ -s ca.crt ] && [ -s server.crt ] && [ -s worker.crt ] && [ -s api.crt ] && [ -s admin.crt ]; then
  echo "temporal-certs: certificates exist in $dir; remove them to make new ones" >&2
  exit 0
fi

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" \
  -subj "/CN=steward deployment CA" -out ca.crt

sign() {
  name=$1; cn=$2; ext=$3
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
  printf '%s\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -sha256 -days "$days" -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

sign server temporal "subjectAltName=DNS:temporal,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
sign worker steward-worker "extendedKeyUsage=clientAuth"
sign api steward-api "extendedKeyUsage=clientAuth"
sign admin temporal-admin "extendedKeyUsage=clientAuth"
rm -f ca.srl
# The containers run as their own users and mount the volume read-only:
# the certificates and the service keys are readable there (the volume is
# mounted into Temporal's and steward's containers only); the CA's key is
# this script's alone, so nothing else can make a certificate.
chmod 0644 ./*.crt ./*.key
chmod 0600 ca.key
chmod 0755 .
echo "temporal-certs: made ca, server, worker, api and admin certificates in $dir" >&2
