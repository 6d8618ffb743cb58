//go:build !unix

package jobs

// procStart is unknown here.
func procStart(pid int) string { return "" }

// exactlyAlive cannot tell here.
func exactlyAlive(pid int, start string) (alive, known bool) { return false, false }

// pidAlive cannot check a pid here: it says no, so that an owner on this
// machine is judged as one on another machine, by its heartbeat alone.
func pidAlive(pid int) bool { return false }
