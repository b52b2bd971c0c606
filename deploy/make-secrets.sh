#!/usr/bin/env sh
# Write the Docker secrets docker-compose.yml mounts (once; existing files are kept).
#   deploy/make-secrets.sh [DIR]     # DIR defaults to ./secrets (CE_SECRETS_DIR in compose)
# The files are random, URL-safe and ignored by git. The directory is mode 700 (no other user of the
# host can reach them); the files themselves are 644 because Compose bind-mounts them as they are and
# the services run as the image's non-root user (uid 10001). To rotate one, delete it and run
# this again, then recreate the containers that use it (PostgreSQL and MinIO keep the credentials
# of their first start in their volumes: change those with `mc admin user`, and for PostgreSQL run
# deploy/postgres/init-databases.sh again, which resets every service role's password).
set -eu
dir=${1:-${CE_SECRETS_DIR:-./secrets}}
mkdir -p "$dir"
chmod 700 "$dir"
random() { python3 -c "import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))" "$1"; }
write() {
  if [ -s "$dir/$1" ]; then
    echo "kept    $dir/$1"
  else
    (umask 022 && printf '%s' "$2" > "$dir/$1")
    echo "created $dir/$1"
  fi
}
write jwt_secret "$(random 48)"
write postgres_password "$(random 32)"  # the superuser's, for the operator
# each service's own PostgreSQL role (deploy/postgres/init-databases.sh)
write postgres_claims_password "$(random 32)"
write postgres_review_password "$(random 32)"
write postgres_registry_password "$(random 32)"
write postgres_sync_password "$(random 32)"
write minio_root_user "ce-root-$(random 6)"
write minio_root_password "$(random 32)"
write s3_access_key "ce-claims-$(random 6)"
write s3_secret_key "$(random 32)"
# shared with the identity provider, which hashes verified ID numbers with it (id_number_hmac)
write identity_hmac_key "$(random 32)"
# the province platform issues this one: replace the file with its key (the dev simulator checks it)
write province_api_key "$(random 32)"
# seals the web console's session cookies
write console_session_secret "$(random 48)"
# the identity provider issues this one with the console's client registration: replace the file
write oidc_client_secret "$(random 32)"
