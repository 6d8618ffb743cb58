package sessions

import "cmp"

// jobTerm is the terminal type of a job that asked for a terminal size
// (ssh_run cols/rows): full-screen programs need a real one (less, vim and
// top refuse or misdraw on "dumb"). xterm-256color is in every terminfo
// database (Debian's ncurses-base) and is what the screen's emulator
// understands. Only such jobs get it: on a capable terminal, ordinary
// programs draw progress with cursor movements (cargo, pip, apt), which the
// line cleaner of the stored output cannot undo.
const jobTerm = "xterm-256color"

// terminal is the PTY a job runs on.
type terminal struct {
	cols, rows int
	sized      bool // the job asked for it: restored after the job
}

// jobTerminal gives the job the terminal it asked for, before its command is
// typed: the window change (the kernel's SIGWINCH) and TERM in the shell's
// environment. A job that asked for nothing runs on the session's.
func (s *shell) jobTerminal(jr jobRun) terminal {
	if jr.Cols == 0 && jr.Rows == 0 {
		return terminal{cols: ptyCols, rows: ptyRows}
	}
	t := terminal{cols: cmp.Or(jr.Cols, ptyCols), rows: cmp.Or(jr.Rows, ptyRows), sized: true}
	// The request goes out on the channel before the command's bytes, and
	// sshd applies it (TIOCSWINSZ) before the shell reads the command.
	if err := s.sess.WindowChange(t.rows, t.cols); err != nil {
		s.logger.Warn("resize the terminal", "shell", s.name, "job", jr.ID, "err", err)
	}
	s.writeAsync([]byte(" export TERM="+jobTerm+"\n"), nil)
	return t
}

// restoreTerminal gives the shell back its own terminal after a job that
// asked for another. The line is typed after the job's drain line, so the
// shell runs it once the job is over, before the next job's command.
func (s *shell) restoreTerminal(t terminal) {
	if !t.sized {
		return
	}
	s.writeAsync([]byte(" export TERM="+ptyTerm+"\n"), nil)
	if err := s.sess.WindowChange(ptyRows, ptyCols); err != nil {
		s.logger.Warn("restore the terminal size", "shell", s.name, "err", err)
	}
}
