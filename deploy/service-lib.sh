# Shared by deploy/kafka-local.sh and deploy/registry-local.sh (sourced, not run):
# the test services' pid-file handling.

# kn_stop_pidfile LABEL PIDFILE: TERM the process PIDFILE names, wait up to 30 s, then
# KILL; remove PIDFILE. Returns 1 (after saying so) when nothing was running.
kn_stop_pidfile() {
	local label=$1 pidfile=$2 pid i
	if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
		echo "$label: not running"
		rm -f "$pidfile"
		return 1
	fi
	pid=$(cat "$pidfile")
	kill "$pid"
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}
