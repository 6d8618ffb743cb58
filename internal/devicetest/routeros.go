package devicetest

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// RouterOS configures a RouterOS-like CLI: menus (/interface, /ip address,
// /system identity, /log, /tool) entered by name, `..` and `/`; print, paged
// 24 lines at a time with RouterOS's pager unless `without-paging` is given;
// monitor-traffic and torch, which stream until q or ^C; and its errors
// ("bad command name", "syntax error", "expected end of command").
type RouterOS struct {
	Identity string // MikroTik by default
	User     string // admin by default
	// SampleInterval is the time between two samples of a streaming command
	// (200ms by default).
	SampleInterval time.Duration
	Log            *Log // the lines it ran, if set

	mu   sync.Mutex // protects name
	name string
}

// LogLines is how many entries /log print shows.
const LogLines = 150

// LogLine is entry n (1-based) of /log print.
func LogLine(n int) string {
	return fmt.Sprintf("%3d 07:%02d:%02d system,info entry %03d of the device log", n-1, n/60, n%60, n)
}

var rosMenus = map[string][]string{
	"":          {"interface", "ip", "system", "log", "tool"},
	"interface": {"ethernet"},
	"ip":        {"address"},
	"system":    {"identity"},
}

// rosPager is RouterOS's pager prompt.
const rosPager = "-- [Q quit|D dump|down]"

type rosSession struct {
	d    *RouterOS
	t    *term
	path []string
}

func (d *RouterOS) identity() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.name == "" {
		d.name = d.Identity
		if d.name == "" {
			d.name = "MikroTik"
		}
	}
	return d.name
}

// Serve runs one session: a login (command "") or one exec request.
func (d *RouterOS) Serve(rw io.ReadWriter, command string) {
	s := &rosSession{d: d, t: newTerm(rw, rw)}
	if command != "" {
		s.run(command, false)
		return
	}
	s.t.print("\r\n\r\n  MikroTik RouterOS-like (sshjobs devicetest)\r\n\r\n")
	s.t.lines(s.prompt, d.Log, func(line string) bool { return s.run(line, true) })
}

func (s *rosSession) prompt() string {
	user := s.d.User
	if user == "" {
		user = "admin"
	}
	p := "[" + user + "@" + s.d.identity() + "] "
	if len(s.path) > 0 {
		p += "/" + strings.Join(s.path, " ")
	}
	return p + "> "
}

func isMenu(path []string, name string) bool {
	for _, m := range rosMenus[strings.Join(path, "/")] {
		if m == name {
			return true
		}
	}
	return false
}

// run runs one line; it reports false when the session ends.
func (s *rosSession) run(line string, paged bool) bool {
	words, cols, open := fields(line)
	if open > 0 {
		s.t.println(fmt.Sprintf("syntax error (line 1 column %d)", open))
		return true
	}
	path := append([]string(nil), s.path...)
	i := 0
	if strings.HasPrefix(words[0], "/") {
		path = nil
		if w := strings.TrimPrefix(words[0], "/"); w != "" {
			words[0] = w
			cols[0]++
		} else {
			i = 1
		}
	}
	for ; i < len(words); i++ {
		switch {
		case words[i] == "..":
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case isMenu(path, words[i]):
			path = append(path, words[i])
		default:
			return s.command(path, words[i:], cols[i:], paged)
		}
	}
	s.path = path // a line of menus only changes the context
	return true
}

func (s *rosSession) command(path, words []string, cols []int, paged bool) bool {
	menu := strings.Join(path, "/")
	verb, args := words[0], words[1:]
	switch {
	case menu == "" && verb == "quit":
		s.t.println("interrupted")
		return false
	case menu == "" && verb == ":put":
		s.t.println(strings.Trim(strings.Join(args, " "), `"`))
		return true
	case verb == "print" && menu != "" && menu != "tool":
		return s.print(menu, args, cols[1:], paged)
	case menu == "system/identity" && verb == "set" && len(args) == 1 && strings.HasPrefix(args[0], "name="):
		s.d.mu.Lock()
		s.d.name = strings.Trim(strings.TrimPrefix(args[0], "name="), `"`)
		s.d.mu.Unlock()
		return true
	case menu == "interface" && verb == "monitor-traffic" && len(args) == 1,
		menu == "tool" && verb == "torch" && len(args) == 1 && strings.HasPrefix(args[0], "interface="):
		return s.stream(strings.TrimPrefix(args[0], "interface="))
	}
	s.t.println(fmt.Sprintf("bad command name %s (line 1 column %d)", verb, cols[0]))
	return true
}

func (s *rosSession) print(menu string, args []string, cols []int, paged bool) bool {
	for i, a := range args {
		switch {
		case a == "without-paging":
			paged = false
		case a == "detail" || a == "terse":
		case a == "where":
			// The rest is an expression; every entry matches it here.
			args = args[:i]
		default:
			s.t.println(fmt.Sprintf("expected end of command (line 1 column %d)", cols[i]))
			return true
		}
		if a == "where" {
			break
		}
	}
	var lines []string
	switch menu {
	case "interface", "interface/ethernet":
		lines = []string{
			"Flags: R - RUNNING",
			" #    NAME     TYPE   MTU",
			" 0 R  ether1   ether  1500",
			" 1 R  ether2   ether  1500",
		}
	case "ip/address":
		lines = []string{"Flags: D - DYNAMIC", " #   ADDRESS          NETWORK     INTERFACE", " 0   192.168.88.1/24  192.168.88.0  ether1"}
	case "system/identity":
		lines = []string{"  name: " + s.d.identity()}
	case "log":
		for n := 1; n <= LogLines; n++ {
			lines = append(lines, LogLine(n))
		}
	default:
		s.t.println("bad command name print (line 1 column 1)")
		return true
	}
	pageLen := 0
	if paged {
		pageLen = 24
	}
	return s.t.pager(lines, pageLen, rosPager, "\r\x1b[K")
}

// stream prints a sample per interval with RouterOS's status line under
// it, until q or ^C.
func (s *rosSession) stream(iface string) bool {
	every := s.d.SampleInterval
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	for n := 1; ; n++ {
		s.t.print(fmt.Sprintf("\r\x1b[K  name: %s sample: %d rx-bits-per-second: %dbps\r\n", iface, n, 1000+n))
		s.t.print("-- [Q quit|D dump|C-z pause]")
		k, got, eof := s.t.keyWithin(every)
		if eof {
			return false
		}
		if got && (k == 'q' || k == 'Q' || k == ctrlC) {
			s.t.print("\r\x1b[K")
			return true
		}
	}
}
