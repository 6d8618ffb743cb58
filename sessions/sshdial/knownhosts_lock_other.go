//go:build !unix

package sshdial

import "os"

// lockKnownHosts opens file for appending (creating it 0600). Without flock
// only recordMu serialises records, within this process.
func lockKnownHosts(file string) (*os.File, error) {
	return os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
}
