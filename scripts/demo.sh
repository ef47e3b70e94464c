#!/usr/bin/env bash
# demo.sh: start a godwit daemon in the background and boot a small VM.
# demo.sh stop: delete the demo VM and stop the daemon.
# Run from the repository (make demo / make demo-stop). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=/var/lib/godwit-demo
RUN=/run/godwit-demo
export GODWIT_SOCKET=$RUN/godwit.sock
G="$ROOT/bin/godwit"
PIDFILE=$RUN/daemon.pid
LOG=$STATE/daemon.log
VM=demo

daemon_up() { "$G" host show >/dev/null 2>&1; }

if [ "${1:-}" = stop ]; then
	if daemon_up; then
		"$G" vm delete --force "$VM" 2>/dev/null || true
	fi
	if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		kill "$(cat "$PIDFILE")"
		echo "demo: daemon (pid $(cat "$PIDFILE")) stopped"
	fi
	rm -f "$PIDFILE"
	exit 0
fi

mkdir -p "$STATE" "$RUN"
if ! daemon_up; then
	echo "demo: starting godwit daemon (state $STATE, log $LOG)"
	nohup "$G" daemon --state-dir "$STATE" --socket "$GODWIT_SOCKET" --pool godwit-demo >>"$LOG" 2>&1 &
	echo $! >"$PIDFILE"
	for _ in $(seq 100); do daemon_up && break; sleep 0.2; done
	daemon_up || { echo "demo: the daemon did not come up; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
fi
"$G" host show | grep -E "^(libvirt|Accelerator)"

cat >"$STATE/demo.yaml" <<YAML
name: $VM
cpus: 1
memory: 256MiB
boot:
  kernel: $ROOT/.cache/guest/vmlinuz
  initrd: $ROOT/.cache/guest/initrd.gz
  cmdline: console=ttyS0 quiet diskcounter=1
disks:
  - {name: root, size: 64MiB}
labels: {purpose: demo}
YAML

state=$("$G" vm show "$VM" -o json 2>/dev/null | sed -n 's/^  "state": "\(.*\)",$/\1/p' || true)
case "$state" in
"") echo; echo "demo: creating VM $VM from $STATE/demo.yaml and waiting for its console"
	"$G" vm create -f "$STATE/demo.yaml" --start --wait-for GODWIT-GUEST-UP ;;
running) echo; echo "demo: VM $VM is already running" ;;
*) echo; echo "demo: VM $VM is $state; starting it"
	"$G" vm start "$VM" --wait-for GODWIT-GUEST-UP ;;
esac
sleep 2
echo
"$G" vm list
echo
echo "Last console lines of $VM:"
"$G" vm console "$VM" --no-follow --lines 3
cat <<TXT

The daemon listens on $GODWIT_SOCKET. To use it from your shell:

  export GODWIT_SOCKET=$GODWIT_SOCKET
  $G vm list                  # what runs (virsh list shows the same domains)
  $G vm console $VM           # follow the guest's serial console (Ctrl-C ends)
  $G vm stop $VM              # ACPI shutdown; vm start $VM boots it again
  $G op list                  # the operations behind those commands

To stop everything: make demo-stop  (deletes the VM, stops the daemon)
TXT
