#!/bin/sh
# nginx entrypoint of the compose `scale` profile: makes a self-signed certificate for localhost
# at first start when /etc/nginx/certs holds no tls.crt + tls.key (a mounted real one is used as
# it is), checks the configuration, then runs nginx in the foreground.
set -eu
dir=/etc/nginx/certs
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  if ! command -v openssl >/dev/null 2>&1; then
    echo "http-sse nginx: no $dir/tls.crt + tls.key and no openssl to make one; mount a certificate (SSE_TLS_DIR)" >&2
    exit 1
  fi
  echo "http-sse nginx: no certificate in $dir, making a self-signed one for localhost" >&2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$dir/tls.key.tmp" -out "$dir/tls.crt.tmp" 2>/dev/null
  chmod 600 "$dir/tls.key.tmp"
  mv "$dir/tls.key.tmp" "$dir/tls.key"
  mv "$dir/tls.crt.tmp" "$dir/tls.crt"
fi
nginx -t -q
exec nginx -g 'daemon off;'
