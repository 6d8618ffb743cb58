//go:build unix

package jobs

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStart identifies process pid beyond its pid, as "boot-id pid-namespace
// start-ticks" (Linux: /proc/sys/kernel/random/boot_id, /proc/self/ns/pid and
// field 22 of /proc/pid/stat): the boot id and the namespace say whether
// another process can check the pid at all (same kernel, same pid numbers),
// the start time tells the process from a later one that got the same pid.
// It is "" where /proc cannot tell (other systems).
func procStart(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: count fields from the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3
	if len(f) < 20 {
		return ""
	}
	return strings.TrimSpace(string(boot)) + " " + ns + " " + f[19]
}

// exactlyAlive reports whether the process recorded as (pid, start) still
// runs, when this process can tell exactly: start was recorded on this
// kernel since its boot and in this pid namespace. known is false otherwise.
// A process that is stopped (Ctrl-Z) or in a sleeping machine is alive.
func exactlyAlive(pid int, start string) (alive, known bool) {
	mine := strings.Fields(procStart(os.Getpid()))
	theirs := strings.Fields(start)
	if len(mine) != 3 || len(theirs) != 3 || mine[0] != theirs[0] || mine[1] != theirs[1] || pid <= 0 {
		return false, false
	}
	if !pidAlive(pid) {
		return false, true
	}
	now := strings.Fields(procStart(pid))
	if len(now) != 3 {
		return false, true // gone between the two checks
	}
	return now[2] == theirs[2], true // another start time: the pid was recycled
}

// pidAlive reports whether some process has pid here.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
