//go:build unix

package sqlstore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// writableDir says why dir, the database's folder, cannot be written, or
// nil. SQLite writes its -wal and -shm files there even to read a WAL
// database, and on a read-only file system it only says "unable to open
// database file".
func writableDir(dir string) error {
	switch err := unix.Access(dir, unix.W_OK); {
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %s is on a read-only file system", ErrReadOnly, dir)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s is not writable by this user", ErrReadOnly, dir)
	}
	return nil
}
