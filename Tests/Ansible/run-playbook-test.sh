#!/usr/bin/env bash
# The rolling-update playbook against localhost with rehearsed live updates: two "hosts" (each a
# ferryd with its own LUO emulator, reached through a local connection), a batch of one.
#   1. good updates: the rollout goes through both hosts;
#   2. host1's ferryd fails its reboot (FERRYD_TEST_FAIL_REBOOT=EIO), its update rolls back: the
#      playbook fails and host2 is never touched.
# Installs ansible-core if missing (Debian's package, else PyPI). Closes with
# `ansible: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if ! command -v ansible-playbook >/dev/null; then
  echo "installing ansible-core"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible-core >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible-core >/dev/null; }
  fi
  command -v ansible-playbook >/dev/null || python3 -m pip install -q ansible-core
fi
command -v ansible-playbook >/dev/null || { echo "ansible-playbook not available"; echo "ansible: 0 passed, 1 failed"; exit 1; }

{ swift build --product ferryd >/dev/null && swift build --product ferryctl >/dev/null; } || { echo "build failed"; echo "ansible: 0 passed, 1 failed"; exit 1; }
bin=$(swift build --show-bin-path)

work=$(mktemp -d /tmp/ferry-ansible.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

# A host: an emulator, a ferryd and a service keeping an fd in its store.
start_host() {  # start_host NAME [ENV=VALUE...]
  local name=$1; shift
  local dir=$work/$name
  mkdir -p "$dir/units"
  cat > "$dir/units/keep.service" <<UNIT
[Service]
Type=notify
ExecStart=/usr/bin/python3 $repo/Tests/Interop/tool.py store data kept barrier ready sleep
FileDescriptorStoreMax=10
FileDescriptorStorePreserve=yes
UNIT
  if [ ! -S "$dir/emulator.sock" ]; then
    "$bin/ferryctl" emulator serve --socket "$dir/emulator.sock" --profile 7.2 >"$dir/emulator.log" 2>&1 &
    pids+=($!)
  fi
  env "$@" "$bin/ferryd" --units "$dir/units" --runtime-dir "$dir/run" --state-dir "$dir/state" \
    --metrics-file "$dir/ferry.prom" --liveupdate-emulator "$dir/emulator.sock" >>"$dir/ferryd.log" 2>&1 &
  eval "ferryd_$name=$!"
  pids+=($!)
  for _ in $(seq 100); do "$bin/ferryctl" status --control "$dir/run/control" >/dev/null 2>&1 && break; sleep 0.1; done
  "$bin/ferryctl" start keep.service --control "$dir/run/control" >/dev/null
}

stop_host() {
  local pid_var="ferryd_$1"
  kill "${!pid_var}" 2>/dev/null
  for _ in $(seq 50); do kill -0 "${!pid_var}" 2>/dev/null || break; sleep 0.1; done
}

kexecs() { "$bin/ferryctl" status --json --control "$work/$1/run/control" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kexecCount"])'; }
outcome() { "$bin/ferryctl" last-update --json --control "$work/$1/run/control" | python3 -c 'import json,sys; u=json.load(sys.stdin); print(u["outcome"] if u else "none")'; }

cat > "$work/inventory.ini" <<INV
[ferry]
host1 ferry_control=$work/host1/run/control
host2 ferry_control=$work/host2/run/control

[ferry:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
ferry_ctl=$bin/ferryctl
ferry_rehearse=true
ferry_become=false
ferry_settle_timeout=60
INV

playbook() {
  ANSIBLE_CONFIG=$repo/contrib/ansible/ansible.cfg ANSIBLE_ROLES_PATH=$repo/contrib/ansible/roles \
    ansible-playbook -i "$work/inventory.ini" "$repo/contrib/ansible/playbooks/rolling-live-update.yml" >"$work/$1.log" 2>&1
}

started=$(date +%s)
start_host host1
start_host host2

# 1. A good rollout updates every host.
playbook good
rc=$?
check "good rollout succeeds (rc $rc)" test "$rc" = 0
check "host1 went through one live update" test "$(kexecs host1)" = 1
check "host2 went through one live update" test "$(kexecs host2)" = 1
check "host1's last update succeeded" test "$(outcome host1)" = succeeded
check "the preflight ran ferryctl kexec --dry-run" sh -c "grep -A1 'kexec --dry-run says go' '$work/good.log' | grep -q 'ok: \[host1\]'"
[ "$rc" = 0 ] || tail -40 "$work/good.log"

# 2. host1's reboot fails and its update rolls back: the rollout stops before host2.
stop_host host1
start_host host1 FERRYD_TEST_FAIL_REBOOT=EIO
playbook rollback
rc=$?
check "rollout with a rolled-back update fails (rc $rc)" test "$rc" != 0
check "host1's last update rolled back" test "$(outcome host1)" = rolled-back
check "host2 was not touched (still one live update)" test "$(kexecs host2)" = 1
check "the playbook names the rollback" grep -q "rolled-back" "$work/rollback.log"
[ "$rc" != 0 ] || tail -40 "$work/rollback.log"

echo "ansible playbook test took $(( $(date +%s) - started )) s (after the build)"
echo "ansible: $passed passed, $failed failed"
[ "$failed" = 0 ]
