#!/bin/sh
# gen.sh DIR - generates the throwaway PKI the TLS tests use, into DIR:
#   ca.pem ca.key                   the test CA
#   server.pem server.key           CN=sluice-server, SAN 127.0.0.1 + localhost (key: PKCS#8)
#   server2.pem server2.key         CN=sluice-server-2, same SANs (the "renewed" cert for reload)
#   client.pem client.key           CN=sluice-client, clientAuth (key: traditional "EC PRIVATE KEY")
#   client-enc.key                  client.key as encrypted PKCS#8, passphrase "secret"
#   untrusted-ca.pem                a CA nobody trusts
#   untrusted.pem untrusted.key     CN=sluice-untrusted signed by it, same SANs
#   expired.pem expired.key         CN=sluice-expired signed by the test CA, expired in 2020
# EC P-256 keys keep it fast (well under a second). Nothing generated here is committed.
set -eu
dir=${1:?usage: gen.sh DIR}
mkdir -p "$dir"
cd "$dir"

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# ca NAME CN: a self-signed CA.
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "/O=sluice test/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf NAME CN CA EKU: a leaf cert for 127.0.0.1 and localhost signed by CA.
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/O=sluice test/CN=$2"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=$4" "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "sluice test CA"
ca untrusted-ca "sluice untrusted CA"
leaf server sluice-server ca serverAuth
leaf server2 sluice-server-2 ca serverAuth
leaf client sluice-client ca clientAuth
leaf untrusted sluice-untrusted untrusted-ca serverAuth,clientAuth

# The client key in the traditional (SEC1) format, and an encrypted PKCS#8 copy:
# the loader must take both, as Filebeat's and Logstash's users have either.
openssl ec -in client.key -out client.key 2>/dev/null
openssl pkcs8 -topk8 -in client.key -out client-enc.key -v2 aes-256-cbc -passout pass:secret

# An expired cert: `openssl x509 -days` cannot go back in time, `openssl ca` can set both dates.
key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/O=sluice test/CN=sluice-expired"
mkdir -p ca.db
: > ca.db/index.txt
echo 1000 > ca.db/serial
cat > ca.db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
new_certs_dir = ca.db
serial = ca.db/serial
default_md = sha256
policy = any
unique_subject = no
x509_extensions = ext
[any]
commonName = supplied
organizationName = optional
[ext]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
CNF
openssl ca -batch -notext -config ca.db/ca.cnf -cert ca.pem -keyfile ca.key \
    -startdate 20200101000000Z -enddate 20200102000000Z -in expired.csr -out expired.pem 2>/dev/null
rm -rf ca.db expired.csr ./*.srl
