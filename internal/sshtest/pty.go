package sshtest

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshserver"
)

// pump copies PTY output to the client until EIO, or until the read deadline
// that run sets once the command has exited finds nothing left to read.
func (ss *session) pump(out io.Writer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := ss.master.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && ss.queued() {
			// The deadline passed while a slow or silenced write held us up.
			ss.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			continue
		}
		if err != nil {
			return
		}
	}
}

// queued reports whether the PTY master has output waiting to be read.
func (ss *session) queued() bool { return sshserver.Queued(ss.master) }

// ptyReq opens the PTY as the product's demo server does (sshserver), so
// that both apply the client's terminal modes alike.
func (ss *session) ptyReq(payload []byte) error {
	p, err := sshserver.OpenPTY(payload)
	if err != nil {
		return err
	}
	ss.master, ss.tty = p.Master, p.TTY
	ss.env = append(ss.env, "TERM="+p.Term)
	return nil
}

func (ss *session) setSize(cols, rows, width, height uint32) error {
	return sshserver.SetSize(ss.master, cols, rows, width, height)
}
