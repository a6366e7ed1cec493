#!/bin/sh
# Creates the namespace and registers the search attributes Recovery Vault
# needs (docs/contract.md section 2), as the temporal-namespace job of
# docker-compose.yml. Safe to run again.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do sleep 1; done
temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$ns" --retention 720h
for attr in BackupVaultId:Keyword BackupItemState:Keyword DeferredDeleteTime:Datetime BackupItemWaiting:Keyword BackupItemAnomaly:Keyword; do
  name="${attr%%:*}" type="${attr##*:}"
  temporal operator search-attribute list --namespace "$ns" | grep -q "^ *$name " ||
    temporal operator search-attribute create --namespace "$ns" --name "$name" --type "$type"
done
echo "namespace $ns ready"
