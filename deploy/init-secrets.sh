#!/bin/sh
# Creates, once, the secrets docker-compose.yml reads:
#   deploy/secrets/kek      the key-encryption key (encrypts the signing keys
#                           at rest; without it the stored keys are lost)
#   deploy/secrets/pepper   the password pepper (without it no stored
#                           password hash can be checked again)
#   .env                    KEYWARD_DB_PASSWORD, PostgreSQL's password
# An existing secret is never replaced: back them up (docs/operations.md).
set -eu
cd "$(dirname "$0")/.."

umask 077
mkdir -p deploy/secrets
# The directory keeps other users of this machine out; the files inside
# are readable by all because Compose bind-mounts them into the containers,
# where Keyward runs as the image's nonroot user (uid 65532), not as you.
chmod 700 deploy/secrets

random() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }

for name in kek pepper; do
	f="deploy/secrets/$name"
	if [ -s "$f" ]; then
		echo "$f exists: kept"
		continue
	fi
	random 32 >"$f"
	chmod 644 "$f"
	echo "$f created"
done

if grep -qs '^KEYWARD_DB_PASSWORD=' .env; then
	echo ".env has KEYWARD_DB_PASSWORD: kept"
else
	# URL-safe: it goes into the postgres:// address of --database.
	printf 'KEYWARD_DB_PASSWORD=%s\n' "$(random 24 | tr '+/' '-_' | tr -d '=')" >>.env
	chmod 600 .env
	echo ".env: KEYWARD_DB_PASSWORD created"
fi
