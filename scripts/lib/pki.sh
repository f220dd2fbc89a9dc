# A throwaway PKI for benchmarks, made with `openssl` as tests/src/tls.rs makes one: an EC P-256
# CA valid for 2 days, and certificates it signs.
#
#   source scripts/lib/pki.sh
#   pki_init DIR                 # DIR/ca.pem, DIR/ca.key
#   pki_issue server "subjectAltName=DNS:tfs.test,IP:127.0.0.1
#   extendedKeyUsage=serverAuth"  # DIR/server.pem, DIR/server.key
#
# Requires common.sh (die).

pki_init() { # dir
    PKI=$1
    mkdir -p "$PKI"
    command -v openssl >/dev/null || die "openssl is not installed (Debian: apt-get install openssl)"
    pki_ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/ca.key" \
        -out "$PKI/ca.pem" -days 2 -subj "/CN=tfgate bench CA"
}

pki_ssl() { openssl "$@" >>"$PKI/openssl.log" 2>&1 || die "openssl $*: see $PKI/openssl.log"; }

pki_issue() { # name, extensions (openssl x509 -extfile lines)
    pki_ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "/CN=$1"
    printf '%s\n' "$2" >"$PKI/$1.ext"
    pki_ssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
        -out "$PKI/$1.pem" -extfile "$PKI/$1.ext"
}
