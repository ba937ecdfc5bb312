#!/bin/sh
# Gantry runtime installer, served by a Gantry control plane at /install.sh. It holds no secret:
# the enrollment token is given on the command line and the binary's checksum is verified
# against the control plane before anything is installed.
set -eu

# The control plane that served this script; --api overrides it.
API_DEFAULT='@@GANTRY_API@@'
GANTRY_IMAGE_DEFAULT='ghcr.io/gantry-gw/gantry:latest'
KONG_IMAGE_DEFAULT='kong:3.10'
# GANTRY_INSTALL_ROOT prefixes the files written under /etc (for image builds and tests); the
# unit still names their final paths.
root=${GANTRY_INSTALL_ROOT:-}

usage() {
	cat <<USAGE
Usage: sh install.sh --token gent_... --control-plane ADDR --platform linux|docker [options] [-- runtime flags]

Installs a Gantry runtime instance that enrolls into its runtime group with a one-time
enrollment token (POST /v2/runtime-groups/{id}/enrollment-tokens) and then connects to the
group's control plane. Later starts reuse the stored certificate.

Options:
  --token TOKEN          enrollment token (gent_...); required
  --control-plane ADDR   the control plane's cluster address (host:port or https://host:port); required
  --platform P           linux: install the binary (and a systemd unit); docker: run a container; required
  --runtime R            gantry (default) or kong (Kong Gateway as a data plane; docker only)
  --no-systemd           linux: run the runtime in the foreground instead of installing a unit
  --prefix DIR           linux: install the binary as DIR/bin/gantry (default /usr/local)
  --data-dir DIR         certificate and cached configuration (default /var/lib/gantry)
  --api URL              control plane API to download from (default: ${API_DEFAULT:-none, give --api})
  --image IMAGE          docker: the image (default $GANTRY_IMAGE_DEFAULT, or $KONG_IMAGE_DEFAULT for kong)
  -h, --help             show this help
Arguments after -- are passed on to 'gantry runtime' (see 'gantry runtime --help').

Examples:
  curl -fsSL ${API_DEFAULT:-https://cp.example.com:8080}/install.sh | sudo sh -s -- \\
      --platform linux --token gent_... --control-plane cp.example.com:8005
  curl -fsSL ${API_DEFAULT:-https://cp.example.com:8080}/install.sh | sh -s -- \\
      --platform linux --no-systemd --prefix "\$HOME/.local" --data-dir "\$HOME/.gantry" \\
      --token gent_... --control-plane cp.example.com:8005 -- --proxy-listen :9000
  curl -fsSL ${API_DEFAULT:-https://cp.example.com:8080}/install.sh | sh -s -- \\
      --platform docker --runtime kong --token gent_... --control-plane cp.example.com:8005
USAGE
}

die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

usage_error() {
	printf 'install.sh: %s\nRun "sh install.sh --help" for usage.\n' "$*" >&2
	exit 2
}

# need_value OPTION ARGC: OPTION must be followed by a value.
need_value() {
	if [ "$2" -lt 2 ]; then
		usage_error "$1 needs a value"
	fi
}

token=
control_plane=
platform=
runtime=gantry
systemd=yes
prefix=/usr/local
data_dir=/var/lib/gantry
api=$API_DEFAULT
image=

while [ $# -gt 0 ]; do
	case $1 in
	--token) need_value "$1" $#; token=$2; shift 2 ;;
	--token=*) token=${1#*=}; shift ;;
	--control-plane) need_value "$1" $#; control_plane=$2; shift 2 ;;
	--control-plane=*) control_plane=${1#*=}; shift ;;
	--platform) need_value "$1" $#; platform=$2; shift 2 ;;
	--platform=*) platform=${1#*=}; shift ;;
	--runtime) need_value "$1" $#; runtime=$2; shift 2 ;;
	--runtime=*) runtime=${1#*=}; shift ;;
	--no-systemd) systemd=no; shift ;;
	--prefix) need_value "$1" $#; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--data-dir) need_value "$1" $#; data_dir=$2; shift 2 ;;
	--data-dir=*) data_dir=${1#*=}; shift ;;
	--api) need_value "$1" $#; api=$2; shift 2 ;;
	--api=*) api=${1#*=}; shift ;;
	--image) need_value "$1" $#; image=$2; shift 2 ;;
	--image=*) image=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage_error "unknown argument: $1" ;;
	esac
done
# "$@" now holds the extra flags for 'gantry runtime'.

case $token in
'') usage_error "--token is required: create one with POST /v2/runtime-groups/{id}/enrollment-tokens" ;;
gent_*.*) ;;
*) usage_error "--token must be a whole enrollment token (gent_<secret>.<CA fingerprint>), not an admin or personal access token" ;;
esac
case $token in
*[!A-Za-z0-9_.-]*) usage_error "--token has characters an enrollment token never has; check it was copied whole" ;;
esac
if [ -z "$control_plane" ]; then
	usage_error "--control-plane is required: the group's control_plane_endpoint (host:port or https://host:port)"
fi
case $platform in
linux | docker) ;;
'') usage_error "--platform is required: linux or docker" ;;
*) usage_error "--platform $platform: must be linux or docker" ;;
esac
case $runtime in
gantry) ;;
kong)
	[ "$platform" = docker ] || usage_error "--runtime kong is supported with --platform docker only"
	[ $# -eq 0 ] || usage_error "arguments after -- are gantry runtime flags; Kong Gateway is configured with KONG_* variables instead"
	;;
*) usage_error "--runtime $runtime: must be gantry or kong" ;;
esac
case $data_dir in
/*) ;;
*) usage_error "--data-dir must be an absolute path" ;;
esac

# sha256_of FILE prints FILE's SHA-256 in hex.
sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d ' ' -f 1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d ' ' -f 1
	else
		die "neither sha256sum nor shasum is installed, so the download cannot be verified; install coreutils (or perl's shasum) and retry"
	fi
}

# fetch URL FILE downloads URL to FILE, failing on HTTP errors.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1" || die "cannot download $1: check --api and that this host reaches the control plane's API"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1" || die "cannot download $1: check --api and that this host reaches the control plane's API"
	else
		die "neither curl nor wget is installed; install one and retry"
	fi
}

# systemd_quote ARG prints ARG quoted for an ExecStart line.
systemd_quote() {
	printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/%/%%/g' -e 's/\$/$$/g')"
}

install_linux() {
	if [ -z "$api" ]; then
		usage_error "--api is required: the control plane API's URL (https://host:port) to download gantry from"
	fi
	api=${api%/}
	os=$(uname -s | tr '[:upper:]' '[:lower:]')
	machine=$(uname -m)
	case $machine in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "no gantry binary for machine type $machine; build one from source (GOARCH=...) or use --platform docker" ;;
	esac
	if [ "$systemd" = yes ]; then
		[ "$(id -u)" = 0 ] || die "installing the systemd unit needs root: run with sudo, or pass --no-systemd to run in the foreground"
		command -v systemctl >/dev/null 2>&1 || die "systemctl not found: this host does not run systemd; pass --no-systemd to run in the foreground"
	fi

	tmp=$(mktemp -d)
	url="$api/downloads/gantry/$os/$arch"
	echo "Downloading $url"
	fetch "$url" "$tmp/gantry"
	fetch "$url.sha256" "$tmp/gantry.sha256"
	want=$(cut -d ' ' -f 1 <"$tmp/gantry.sha256")
	got=$(sha256_of "$tmp/gantry")
	if [ "$want" != "$got" ]; then
		rm -rf "$tmp"
		die "checksum mismatch: the downloaded binary's SHA-256 is $got but $url.sha256 says $want; nothing was installed. The download was corrupted or altered: retry, and check --api names your control plane"
	fi
	mkdir -p "$prefix/bin"
	# Replace by rename, so that a running gantry keeps its executable.
	cp "$tmp/gantry" "$prefix/bin/gantry.new"
	chmod 0755 "$prefix/bin/gantry.new"
	mv -f "$prefix/bin/gantry.new" "$prefix/bin/gantry"
	rm -rf "$tmp"
	echo "Installed $prefix/bin/gantry (sha256 $got)"
	mkdir -p "$data_dir"
	chmod 0700 "$data_dir"

	if [ "$systemd" = no ]; then
		echo "Starting gantry runtime in the foreground (cache in $data_dir)"
		exec "$prefix/bin/gantry" runtime --enroll "$token" --control-plane "$control_plane" --cache-dir "$data_dir" "$@"
	fi

	if ! id gantry >/dev/null 2>&1; then
		if command -v useradd >/dev/null 2>&1; then
			useradd --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin gantry
		else
			adduser -S -D -H -h "$data_dir" -s /sbin/nologin gantry
		fi
	fi
	chown gantry "$data_dir"
	# The token stays out of the world-readable unit file.
	mkdir -p "$root/etc/gantry" "$root/etc/systemd/system"
	umask 077
	printf 'GANTRY_ENROLL_TOKEN=%s\n' "$token" >"$root/etc/gantry/runtime-enroll.env"
	umask 022
	if [ "$data_dir" = /var/lib/gantry ]; then
		state="StateDirectory=gantry
StateDirectoryMode=0700"
	else
		state="ReadWritePaths=$data_dir"
	fi
	extra=
	for arg in "$@"; do
		extra="$extra $(systemd_quote "$arg")"
	done
	cat >"$root/etc/systemd/system/gantry-runtime.service" <<UNIT
# Written by the Gantry install script. The instance enrolled with the token of
# /etc/gantry/runtime-enroll.env on its first start; later starts reuse the certificate stored in
# $data_dir and ignore --enroll.
[Unit]
Description=Gantry runtime instance
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
EnvironmentFile=/etc/gantry/runtime-enroll.env
ExecStart=$(systemd_quote "$prefix/bin/gantry") runtime --enroll \${GANTRY_ENROLL_TOKEN} --control-plane $(systemd_quote "$control_plane") --cache-dir $(systemd_quote "$data_dir")$extra
KillSignal=SIGTERM
TimeoutStopSec=45s
Restart=on-failure
RestartSec=2s
RestartPreventExitStatus=2
LimitNOFILE=65536

User=gantry
Group=gantry
$state
WorkingDirectory=$data_dir
UMask=0077

NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=

[Install]
WantedBy=multi-user.target
UNIT
	systemctl daemon-reload
	systemctl enable --now gantry-runtime.service
	echo "gantry-runtime is running; follow it with: journalctl -u gantry-runtime -f"
}

install_docker() {
	command -v docker >/dev/null 2>&1 || die "docker is not installed: install Docker, or use --platform linux"
	mkdir -p "$data_dir"
	chmod 0700 "$data_dir"
	# The Gantry image runs as 65532; it must own the directory it enrolls into.
	if [ "$(id -u)" = 0 ]; then
		chown 65532:65532 "$data_dir"
	fi
	if [ "$runtime" = gantry ]; then
		image=${image:-$GANTRY_IMAGE_DEFAULT}
		# The first start enrolls; restarts reuse the stored certificate and ignore --enroll.
		docker run -d --name gantry-runtime --restart unless-stopped \
			-v "$data_dir:/var/lib/gantry" -p 8000:8000 -p 8443:8443 \
			"$image" runtime --enroll "$token" --control-plane "$control_plane" --cache-dir /var/lib/gantry "$@" >/dev/null ||
			die "docker run failed; if a gantry-runtime container exists already, remove it with: docker rm -f gantry-runtime"
		echo "gantry-runtime is running; follow it with: docker logs -f gantry-runtime"
		return
	fi

	# Kong Gateway: enroll with the Gantry image once for the certificate, then start Kong as a
	# data plane with it.
	enroll_image=$GANTRY_IMAGE_DEFAULT
	image=${image:-$KONG_IMAGE_DEFAULT}
	docker rm -f gantry-enroll >/dev/null 2>&1 || true
	docker run -d --name gantry-enroll -v "$data_dir:/var/lib/gantry" \
		"$enroll_image" runtime --enroll "$token" --control-plane "$control_plane" --cache-dir /var/lib/gantry \
		--proxy-listen off --proxy-tls-listen off >/dev/null ||
		die "docker run $enroll_image failed; check that Docker can pull it"
	i=0
	while [ ! -s "$data_dir/enrollment/ca.crt" ]; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			docker logs gantry-enroll >&2 || true
			docker rm -f gantry-enroll >/dev/null 2>&1 || true
			die "enrollment did not finish within 60 seconds (its log is above): check the token and --control-plane"
		fi
		sleep 1
	done
	docker rm -f gantry-enroll >/dev/null 2>&1 || true
	hostport=${control_plane#*://}
	hostport=${hostport%%/*}
	host=${hostport%:*}
	cert_dir=/etc/kong/cluster
	# The Kong image runs as the kong user (1000); it reads its own copy of the certificate.
	mkdir -p "$data_dir/kong"
	for f in tls.crt tls.key ca.crt; do
		cp "$data_dir/enrollment/$f" "$data_dir/kong/$f"
	done
	if [ "$(id -u)" = 0 ]; then
		chown -R 1000:1000 "$data_dir/kong"
	fi
	chmod 0700 "$data_dir/kong"
	docker run -d --name kong-dp --restart unless-stopped \
		-v "$data_dir/kong:$cert_dir:ro" -p 8000:8000 -p 8443:8443 \
		-e KONG_ROLE=data_plane -e KONG_DATABASE=off -e KONG_CLUSTER_MTLS=pki \
		-e "KONG_CLUSTER_CONTROL_PLANE=$hostport" -e "KONG_CLUSTER_SERVER_NAME=$host" \
		-e "KONG_CLUSTER_TELEMETRY_ENDPOINT=$hostport" -e "KONG_CLUSTER_TELEMETRY_SERVER_NAME=$host" \
		-e "KONG_CLUSTER_CERT=$cert_dir/tls.crt" -e "KONG_CLUSTER_CERT_KEY=$cert_dir/tls.key" \
		-e "KONG_CLUSTER_CA_CERT=$cert_dir/ca.crt" -e "KONG_LUA_SSL_TRUSTED_CERTIFICATE=$cert_dir/ca.crt,system" \
		-e KONG_PROXY_LISTEN="0.0.0.0:8000, 0.0.0.0:8443 ssl" \
		"$image" >/dev/null ||
		die "docker run $image failed; if a kong-dp container exists already, remove it with: docker rm -f kong-dp"
	echo "kong-dp is running; follow it with: docker logs -f kong-dp"
}

case $platform in
linux) install_linux "$@" ;;
docker) install_docker "$@" ;;
esac
