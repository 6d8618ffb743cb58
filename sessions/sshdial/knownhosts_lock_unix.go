//go:build unix

package sshdial

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// knownHostsLockWait bounds the wait for another process's lock: a record
// happens inside the handshake, which must not hang on a stuck process.
const knownHostsLockWait = 10 * time.Second

// lockKnownHosts opens file for appending (creating it 0600) and takes an
// exclusive flock on it, which other sshjobs processes take too (OpenSSH
// takes none). Closing the file releases the lock.
func lockKnownHosts(file string) (*os.File, error) {
	deadline := time.Now().Add(knownHostsLockWait)
	for {
		f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				break
			}
			if time.Now().After(deadline) {
				f.Close()
				return nil, fmt.Errorf("known_hosts is locked by another process for more than %s", knownHostsLockWait)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		// ssh-keygen -R and -H replace the file by a rename: a lock on the
		// replaced file guards nothing, so lock the current one.
		got, err1 := f.Stat()
		cur, err2 := os.Stat(file)
		if err1 == nil && err2 == nil && os.SameFile(got, cur) {
			return f, nil
		}
		f.Close()
		if time.Now().After(deadline) {
			return nil, errors.New("known_hosts keeps being replaced; cannot lock it")
		}
	}
}
