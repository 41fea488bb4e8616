#!/bin/sh
# Runs the harness as the owner of the results directory, so that reports written to a bind
# mount (docker compose: ./loadtest/results) belong to whoever owns that directory on the host
# and are readable there. Without a mount the directory is the image's, owned by `node`.
set -eu
results=/app/loadtest/results
mkdir -p "$results"
uid=$(stat -c %u "$results")
gid=$(stat -c %g "$results")
if [ "$(id -u)" = 0 ] && [ "$uid" != 0 ]; then
  exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- node loadtest/src/main.ts "$@"
fi
exec node loadtest/src/main.ts "$@"
