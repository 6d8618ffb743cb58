package devicetest

import (
	"io"
	"strings"
	"sync"
)

// Junos configures a Junos-like CLI: operational mode (user@host>) and
// configuration mode (user@host#), where each command's output is followed
// by a blank line and the context line, `[edit]` or `[edit interfaces
// ge-0/0/0]`, before the prompt; edit, up, top, set, show, `show |
// compare` (whose output has context lines of its own), commit, exit; and
// Junos's errors ("unknown command.", "syntax error").
type Junos struct {
	User, Host string // admin and mx1 by default
	Log        *Log   // the lines it ran, if set

	mu        sync.Mutex // protects the configuration, shared by every session
	committed []string   // set statements, committed
	candidate []string   // set statements not committed yet
}

type junosSession struct {
	d      *Junos
	t      *term
	config bool     // in configuration mode
	path   []string // the edit level
}

// Serve runs one session: a login (command "") or one exec request.
func (d *Junos) Serve(rw io.ReadWriter, command string) {
	s := &junosSession{d: d, t: newTerm(rw, rw)}
	if command != "" {
		s.run(command)
		return
	}
	s.t.print("--- JUNOS 21.4R1 (sshjobs devicetest)\r\n")
	s.t.lines(s.prompt, d.Log, s.run)
}

func (s *junosSession) prompt() string {
	user, host := s.d.User, s.d.Host
	if user == "" {
		user = "admin"
	}
	if host == "" {
		host = "mx1"
	}
	if s.config {
		return user + "@" + host + "# "
	}
	return user + "@" + host + "> "
}

// editContext is the line Junos shows before the prompt in configuration mode.
func editContext(path []string) string {
	if len(path) == 0 {
		return "[edit]"
	}
	return "[edit " + strings.Join(path, " ") + "]"
}

// run runs one line; false ends the session.
func (s *junosSession) run(line string) bool {
	words := strings.Fields(line)
	if !s.config {
		return s.operational(words)
	}
	s.configure(words)
	if s.config {
		s.t.println("")
		s.t.println(editContext(s.path))
	}
	return true
}

func (s *junosSession) operational(words []string) bool {
	switch strings.Join(words, " ") {
	case "exit", "quit":
		return false
	case "configure":
		s.t.println("Entering configuration mode")
		s.t.println("")
		s.t.println(editContext(nil))
		s.config = true
	case "set cli screen-length 0":
		s.t.println("Screen length set to 0")
	case "show version":
		s.t.println("Hostname: mx1")
		s.t.println("Model: mx-devicetest")
		s.t.println("Junos: 21.4R1 (sshjobs devicetest)")
	case "show configuration":
		s.d.mu.Lock()
		for _, l := range s.d.committed {
			s.t.println(l)
		}
		s.d.mu.Unlock()
	default:
		s.t.println("                  ^")
		s.t.println("unknown command.")
	}
	return true
}

func (s *junosSession) configure(words []string) {
	switch {
	case len(words) > 1 && words[0] == "edit":
		s.path = append(s.path, words[1:]...)
	case len(words) == 1 && words[0] == "up":
		if len(s.path) > 0 {
			s.path = s.path[:len(s.path)-1]
		}
	case len(words) == 1 && words[0] == "top":
		s.path = nil
	case len(words) > 1 && words[0] == "set":
		s.d.mu.Lock()
		s.d.candidate = append(s.d.candidate, strings.Join(append(append([]string{"set"}, s.path...), words[1:]...), " "))
		s.d.mu.Unlock()
	case strings.Join(words, " ") == "show | compare":
		// Each change under the context of its level, as Junos shows it.
		s.d.mu.Lock()
		for _, c := range s.d.candidate {
			w := strings.Fields(c)[1:]
			at := max(len(w)-2, 0)
			s.t.println(editContext(w[:at]))
			s.t.println("+   " + strings.Join(w[at:], " ") + ";")
		}
		s.d.mu.Unlock()
	case len(words) == 1 && words[0] == "commit":
		s.d.mu.Lock()
		s.d.committed = append(s.d.committed, s.d.candidate...)
		s.d.candidate = nil
		s.d.mu.Unlock()
		s.t.println("commit complete")
	case len(words) == 1 && (words[0] == "exit" || words[0] == "quit"):
		if len(s.path) > 0 {
			s.path = s.path[:len(s.path)-1]
			return
		}
		s.t.println("Exiting configuration mode")
		s.config = false
	default:
		s.t.println("syntax error.")
	}
}
