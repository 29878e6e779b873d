#!/bin/bash
# ParallelCluster OnNodeConfigured custom action for daylib (idempotent: safe to run again).
#
# On every node: the dedicated `daylily` user with a fixed uid (Slurm runs the steps as it, so
# it must resolve on compute nodes) and its work directory on the shared /home.
# On the head node also: install daylib into /opt/daylib/venv, write /etc/daylily-workset.yaml
# from the daylib stack's outputs, install and (re)start the monitor service.
#
# Arguments (OnNodeConfigured Args): STACK [PIP_SPEC [UNIT_SOURCE]]
#   STACK        the CloudFormation stack made from infra/daylib.yaml
#   PIP_SPEC     what to pip install (default: daylib; a wheel in S3 is fine: s3://...)
#   UNIT_SOURCE  infra/systemd/daylily-workset-monitor.service, as s3://... or a path
#                (default: beside this script)
set -euo pipefail

STACK="${1:?usage: on-node-configured.sh STACK [PIP_SPEC]}"
PIP_SPEC="${2:-daylib}"
UNIT_SOURCE="${3:-$(dirname "${BASH_SOURCE[0]}")/daylily-workset-monitor.service}"
DAYLILY_UID=4242
PREFIX=/opt/daylib
CONFIG=/etc/daylily-workset.yaml
UNIT=/etc/systemd/system/daylily-workset-monitor.service
CFNCONFIG=/etc/parallelcluster/cfnconfig

log() { echo "daylib custom action: $*" >&2; }

node_type() {
    if [[ -r "$CFNCONFIG" ]] && grep -q '^cfn_node_type=HeadNode' "$CFNCONFIG"; then
        echo head
    else
        echo compute
    fi
}

region() {
    if [[ -r "$CFNCONFIG" ]]; then
        sed -n 's/^cfn_region=//p' "$CFNCONFIG"
    fi
}

ensure_user() {
    if ! getent group daylily >/dev/null; then
        groupadd --gid "$DAYLILY_UID" daylily
    fi
    if ! id daylily >/dev/null 2>&1; then
        useradd --uid "$DAYLILY_UID" --gid daylily --home-dir /home/daylily \
            --shell /bin/bash --no-create-home daylily
    fi
}

ensure_workdir() {
    install -d -o daylily -g daylily -m 0750 /home/daylily /home/daylily/work
}

install_daylib() {
    local spec="$PIP_SPEC"
    if [[ "$spec" == s3://* ]]; then
        local wheel
        wheel="/tmp/$(basename "$spec")"
        aws s3 cp "$spec" "$wheel"
        spec="$wheel"
    fi
    if [[ ! -x "$PREFIX/venv/bin/python" ]]; then
        python3 -m venv "$PREFIX/venv"
    fi
    "$PREFIX/venv/bin/python" -m pip install --quiet --upgrade "$spec"
}

write_config() {
    local tmp
    tmp="$(mktemp)"
    AWS_REGION="$(region)" "$PREFIX/venv/bin/daylily-workset" config from-stack "$STACK" \
        --output "$tmp"
    {
        cat "$tmp"
        printf 'monitor:\n  executor: slurm\n  workdir: /home/daylily/work\n'
    } >"$tmp.full"
    install -o root -g daylily -m 0640 "$tmp.full" "$CONFIG"
    rm -f "$tmp" "$tmp.full"
}

install_service() {
    local src="$UNIT_SOURCE"
    if [[ "$src" == s3://* ]]; then
        aws s3 cp "$src" /tmp/daylily-workset-monitor.service
        src=/tmp/daylily-workset-monitor.service
    fi
    install -m 0644 "$src" "$UNIT"
    systemctl daemon-reload
    systemctl enable daylily-workset-monitor.service
    systemctl restart daylily-workset-monitor.service
}

main() {
    ensure_user
    if [[ "$(node_type)" != head ]]; then
        log "compute node: user ready"
        return 0
    fi
    ensure_workdir
    install_daylib
    write_config
    "$PREFIX/venv/bin/daylily-workset" --config "$CONFIG" doctor || \
        log "doctor found problems (see above); the service starts anyway"
    install_service
    log "monitor enabled for stack $STACK"
}

main "$@"
