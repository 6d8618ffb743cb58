package sshserver

import (
	"errors"
	"os"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// pump copies PTY output to the client until EIO, or until the read deadline
// that run sets once the command has exited finds nothing left to read.
func (ss *session) pump() {
	buf := make([]byte, 32<<10)
	for {
		n, err := ss.master.Read(buf)
		if n > 0 {
			if _, err := ss.ch.Write(buf[:n]); err != nil {
				return
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && ss.queued() {
			// The deadline passed while a slow client held us up.
			ss.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			continue
		}
		if err != nil {
			return
		}
	}
}

// queued reports whether the PTY master has output waiting to be read.
func (ss *session) queued() bool { return Queued(ss.master) }

func (ss *session) ptyReq(payload []byte) error {
	p, err := OpenPTY(payload)
	if err != nil {
		return err
	}
	ss.master, ss.tty = p.Master, p.TTY
	ss.env = append(ss.env, "TERM="+p.Term)
	return nil
}

func (ss *session) setSize(cols, rows, width, height uint32) error {
	return SetSize(ss.master, cols, rows, width, height)
}

// PTY is a pseudo-terminal opened for a pty-req: what a server needs to run
// a command on it. The helpers here are shared with internal/sshtest's
// in-process test server, so that both apply terminal modes alike.
type PTY struct {
	// Master is non-blocking (pollable): Close interrupts a pending Read,
	// and SetReadDeadline works.
	Master *os.File
	TTY    *os.File // the command's terminal; close it once the command started
	Term   string   // TERM as the client asked
}

// OpenPTY opens a PTY as the pty-req payload asks: its terminal modes (echo
// off, for sshjobs) and its size.
func OpenPTY(payload []byte) (*PTY, error) {
	var p struct {
		Term                      string
		Cols, Rows, Width, Height uint32
		Modes                     string
	}
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return nil, err
	}
	m, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	// pty.Open leaves the master in blocking mode, where Close cannot interrupt a
	// pending Read; a non-blocking duplicate is pollable, so hangup can close it.
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		tty.Close()
		return nil, err
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err = ApplyModes(tty, []byte(p.Modes)); err == nil {
		err = SetSize(master, p.Cols, p.Rows, p.Width, p.Height)
	}
	if err != nil {
		master.Close()
		tty.Close()
		return nil, err
	}
	return &PTY{Master: master, TTY: tty, Term: p.Term}, nil
}

// Queued reports whether master has output waiting to be read.
func Queued(master *os.File) bool {
	rc, err := master.SyscallConn()
	n := 0
	if err == nil {
		rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	}
	return n > 0
}

// SetSize sets the terminal's size (pty-req, window-change).
func SetSize(master *os.File, cols, rows, width, height uint32) error {
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Row: uint16(rows), Col: uint16(cols), Xpixel: uint16(width), Ypixel: uint16(height)}
	var ierr error
	// Control, not Fd: Fd would switch the master back to blocking mode.
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ierr
}

// Terminal modes (RFC 4254 section 8): x/crypto/ssh passes the encoded list on
// and leaves applying it to the server, so a client's ECHO 0 would otherwise be
// ignored. Opcodes without a Linux equivalent are skipped, as sshd does.
var modeChars = map[byte]int{
	ssh.VINTR: unix.VINTR, ssh.VQUIT: unix.VQUIT, ssh.VERASE: unix.VERASE, ssh.VKILL: unix.VKILL,
	ssh.VEOF: unix.VEOF, ssh.VEOL: unix.VEOL, ssh.VEOL2: unix.VEOL2, ssh.VSTART: unix.VSTART,
	ssh.VSTOP: unix.VSTOP, ssh.VSUSP: unix.VSUSP, ssh.VREPRINT: unix.VREPRINT,
	ssh.VWERASE: unix.VWERASE, ssh.VLNEXT: unix.VLNEXT, ssh.VDISCARD: unix.VDISCARD,
}

var modeFlags = map[byte]struct {
	field byte // i, o, c or l: which termios flag word
	bit   uint32
}{
	ssh.IGNPAR: {'i', unix.IGNPAR}, ssh.PARMRK: {'i', unix.PARMRK}, ssh.INPCK: {'i', unix.INPCK},
	ssh.ISTRIP: {'i', unix.ISTRIP}, ssh.INLCR: {'i', unix.INLCR}, ssh.IGNCR: {'i', unix.IGNCR},
	ssh.ICRNL: {'i', unix.ICRNL}, ssh.IUCLC: {'i', unix.IUCLC}, ssh.IXON: {'i', unix.IXON},
	ssh.IXANY: {'i', unix.IXANY}, ssh.IXOFF: {'i', unix.IXOFF}, ssh.IMAXBEL: {'i', unix.IMAXBEL},
	ssh.IUTF8: {'i', unix.IUTF8},
	ssh.ISIG:  {'l', unix.ISIG}, ssh.ICANON: {'l', unix.ICANON}, ssh.XCASE: {'l', unix.XCASE},
	ssh.ECHO: {'l', unix.ECHO}, ssh.ECHOE: {'l', unix.ECHOE}, ssh.ECHOK: {'l', unix.ECHOK},
	ssh.ECHONL: {'l', unix.ECHONL}, ssh.NOFLSH: {'l', unix.NOFLSH}, ssh.TOSTOP: {'l', unix.TOSTOP},
	ssh.IEXTEN: {'l', unix.IEXTEN}, ssh.ECHOCTL: {'l', unix.ECHOCTL}, ssh.ECHOKE: {'l', unix.ECHOKE},
	ssh.PENDIN: {'l', unix.PENDIN},
	ssh.OPOST:  {'o', unix.OPOST}, ssh.OLCUC: {'o', unix.OLCUC}, ssh.ONLCR: {'o', unix.ONLCR},
	ssh.OCRNL: {'o', unix.OCRNL}, ssh.ONOCR: {'o', unix.ONOCR}, ssh.ONLRET: {'o', unix.ONLRET},
	ssh.CS7: {'c', unix.CS7}, ssh.CS8: {'c', unix.CS8}, ssh.PARENB: {'c', unix.PARENB},
	ssh.PARODD: {'c', unix.PARODD},
}

// ApplyModes decodes the list (opcode byte, uint32 value, ..., 0) onto tty's termios.
func ApplyModes(tty *os.File, modes []byte) error {
	fd := int(tty.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	// Opcode 0 ends the list; 160 and above are undefined and stop parsing.
	for len(modes) >= 5 && modes[0] != 0 && modes[0] < 160 {
		op, v := modes[0], uint32(modes[1])<<24|uint32(modes[2])<<16|uint32(modes[3])<<8|uint32(modes[4])
		modes = modes[5:]
		if i, ok := modeChars[op]; ok {
			if v == 255 { // OpenSSH's _POSIX_VDISABLE; Linux's is 0
				v = 0
			}
			tio.Cc[i] = uint8(v)
			continue
		}
		m, ok := modeFlags[op]
		if !ok {
			continue
		}
		w := map[byte]*uint32{'i': &tio.Iflag, 'o': &tio.Oflag, 'c': &tio.Cflag, 'l': &tio.Lflag}[m.field]
		if v != 0 {
			*w |= m.bit
		} else {
			*w &^= m.bit
		}
	}
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}
