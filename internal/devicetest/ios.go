package devicetest

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IOS configures an IOS-like CLI: user (>) and privileged (#) modes, an
// enable secret, configure and interface modes, --More-- paging (24 lines
// until `terminal length 0`), IOS's error messages, and ping, which streams
// until it is done or ^C stops it.
type IOS struct {
	Hostname     string // R1 by default
	EnableSecret string // "" lets `enable` in without a password
	// EnablePrompt is what enable asks the secret with ("Password: " by
	// default): other CLIs say "Enable Password:", "enable secret:", ...
	EnablePrompt string
	// DropAfter, if set, drops the CLI back to user mode when a line comes
	// after this long without one, as if an exec timeout had ended enable
	// mode.
	DropAfter time.Duration
	// PingInterval is the time between two echoes of ping (100ms by default).
	PingInterval time.Duration
	Log          *Log // the lines it ran, if set

	mu    sync.Mutex // protects state across sessions
	state *iosState  // the running configuration, shared by every session
}

type iosState struct {
	hostname string
	ifaces   map[string]*iosIface
}

type iosIface struct {
	desc, addr string
	shutdown   bool
}

type iosMode int

const (
	modeUser iosMode = iota
	modePriv
	modeConfig
	modeConfigIf
)

// iosSession is one login to the CLI.
type iosSession struct {
	d       *IOS
	t       *term
	mode    iosMode
	iface   string // in modeConfigIf
	termLen int
	last    time.Time
}

func (d *IOS) shared() *iosState {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		name := d.Hostname
		if name == "" {
			name = "R1"
		}
		d.state = &iosState{hostname: name, ifaces: map[string]*iosIface{
			"FastEthernet0/0": {addr: "10.0.0.1 255.255.255.0"},
			"FastEthernet0/1": {shutdown: true},
		}}
	}
	return d.state
}

func (d *IOS) hostname() string {
	st := d.shared()
	d.mu.Lock()
	defer d.mu.Unlock()
	return st.hostname
}

// Serve runs one session: a login (command "") or one exec request.
func (d *IOS) Serve(rw io.ReadWriter, command string) {
	s := &iosSession{d: d, t: newTerm(rw, rw), termLen: 24, last: time.Now()}
	if command != "" {
		s.termLen = 0
		s.run(command)
		return
	}
	s.t.print("\r\n")
	for {
		s.t.print(s.prompt())
		line, ctrl, ok := s.t.readLine(false)
		if !ok {
			return
		}
		if d.DropAfter > 0 && s.mode != modeUser && time.Since(s.last) > d.DropAfter {
			s.mode = modeUser
		}
		s.last = time.Now()
		if ctrl == ctrlZ && s.mode >= modeConfig {
			s.t.print("^Z\r\n")
			s.mode = modePriv
			continue
		}
		if ctrl == ctrlC {
			s.t.print("^C\r\n")
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		d.Log.add(line)
		if !s.run(line) {
			return
		}
	}
}

func (s *iosSession) prompt() string {
	h := s.d.hostname()
	switch s.mode {
	case modeUser:
		return h + ">"
	case modeConfig:
		return h + "(config)#"
	case modeConfigIf:
		return h + "(config-if)#"
	}
	return h + "#"
}

// iosCmd is one command of a mode: its keywords ("*" is one argument, "**"
// the rest of the line) and what it does with its arguments.
type iosCmd struct {
	words string
	run   func(s *iosSession, args []string, filter string) bool
}

var iosUser = []iosCmd{
	{"enable", (*iosSession).enable},
	{"exit", func(*iosSession, []string, string) bool { return false }},
	{"logout", func(*iosSession, []string, string) bool { return false }},
	{"ping **", (*iosSession).ping},
	{"show version", (*iosSession).showVersion},
	{"show clock", func(s *iosSession, _ []string, f string) bool { return s.out(f, "*12:00:00.000 UTC Wed Dec 2 2026") }},
	{"terminal length *", (*iosSession).terminalLength},
	{"telnet *", func(s *iosSession, a []string, _ string) bool {
		s.t.println("Trying " + a[0] + " ...")
		s.t.println("% Connection refused by remote host")
		return true
	}},
	{"traceroute *", func(s *iosSession, a []string, _ string) bool {
		s.t.println("Tracing the route to " + a[0])
		s.t.println("  1 " + a[0] + " 1 msec 1 msec 1 msec")
		return true
	}},
}

var iosPriv = append([]iosCmd{
	{"disable", func(s *iosSession, _ []string, _ string) bool { s.mode = modeUser; return true }},
	{"configure terminal", func(s *iosSession, _ []string, _ string) bool {
		s.t.println("Enter configuration commands, one per line.  End with CNTL/Z.")
		s.mode = modeConfig
		return true
	}},
	{"show running-config", (*iosSession).showRun},
	{"show logging", (*iosSession).showLogging},
}, iosUser...)

var iosConfig = []iosCmd{
	{"hostname *", func(s *iosSession, a []string, _ string) bool {
		s.d.mu.Lock()
		s.d.state.hostname = a[0]
		s.d.mu.Unlock()
		return true
	}},
	{"interface *", func(s *iosSession, a []string, _ string) bool {
		s.d.mu.Lock()
		if s.d.state.ifaces[a[0]] == nil {
			s.d.state.ifaces[a[0]] = &iosIface{}
		}
		s.d.mu.Unlock()
		s.mode, s.iface = modeConfigIf, a[0]
		return true
	}},
	{"end", func(s *iosSession, _ []string, _ string) bool { s.mode = modePriv; return true }},
	{"exit", func(s *iosSession, _ []string, _ string) bool { s.mode = modePriv; return true }},
}

var iosConfigIf = []iosCmd{
	{"description **", func(s *iosSession, a []string, _ string) bool {
		return s.setIface(func(i *iosIface) { i.desc = strings.Join(a, " ") })
	}},
	{"ip address * *", func(s *iosSession, a []string, _ string) bool {
		return s.setIface(func(i *iosIface) { i.addr = a[0] + " " + a[1] })
	}},
	{"shutdown", func(s *iosSession, _ []string, _ string) bool {
		return s.setIface(func(i *iosIface) { i.shutdown = true })
	}},
	{"no shutdown", func(s *iosSession, _ []string, _ string) bool {
		return s.setIface(func(i *iosIface) { i.shutdown = false })
	}},
	{"exit", func(s *iosSession, _ []string, _ string) bool { s.mode = modeConfig; return true }},
	{"end", func(s *iosSession, _ []string, _ string) bool { s.mode = modePriv; return true }},
}

func (s *iosSession) setIface(f func(*iosIface)) bool {
	s.d.mu.Lock()
	f(s.d.state.ifaces[s.iface])
	s.d.mu.Unlock()
	return true
}

func (s *iosSession) commands() []iosCmd {
	switch s.mode {
	case modeUser:
		return iosUser
	case modeConfig:
		return iosConfig
	case modeConfigIf:
		return iosConfigIf
	}
	return iosPriv
}

// run parses line the way IOS does (unique prefixes of keywords; `| include
// RE` after a show command) and runs it. It reports false when the session
// ends.
func (s *iosSession) run(line string) bool {
	filter := ""
	if i := strings.Index(line, " | "); i >= 0 {
		rest := strings.Fields(line[i+3:])
		if len(rest) < 2 || !strings.HasPrefix("include", rest[0]) || !strings.HasPrefix(line, "sh") {
			s.invalid(i + 2)
			return true
		}
		filter = strings.Join(rest[1:], " ")
		line = line[:i]
	}
	words, cols, _ := fields(line)
	type match struct {
		c     iosCmd
		args  []string
		exact int
	}
	var oks []match
	fail, incomplete := 0, false
	for _, c := range s.commands() {
		args, at, inc, exact, ok := matchWords(strings.Fields(c.words), words)
		switch {
		case ok:
			oks = append(oks, match{c, args, exact})
		case inc:
			incomplete = true
		default:
			fail = max(fail, at)
		}
	}
	if len(oks) > 1 {
		best := 0
		for _, m := range oks {
			best = max(best, m.exact)
		}
		oks = slices.DeleteFunc(oks, func(m match) bool { return m.exact < best })
	}
	switch {
	case len(oks) == 1:
		return oks[0].c.run(s, oks[0].args, filter)
	case len(oks) > 1:
		s.t.println(fmt.Sprintf("%% Ambiguous command:  %q", line))
	case incomplete:
		s.t.println("% Incomplete command.")
		s.t.println("")
	case fail == 0 && len(words) == 1 && s.mode <= modePriv:
		s.t.println("Translating \"" + words[0] + "\"")
		s.t.println("% Unknown command or computer name, or unable to find computer address")
	default:
		s.invalid(cols[fail] - 1)
	}
	return true
}

// matchWords matches the words of a line against a command's keywords
// (each word a prefix of its keyword). Without a match, at is the word that
// failed, or inc says that the line stopped short.
func matchWords(kws, words []string) (args []string, at int, inc bool, exact int, ok bool) {
	for i, k := range kws {
		switch {
		case k == "**" && i < len(words):
			return append(args, words[i:]...), 0, false, exact, true
		case i >= len(words):
			return nil, 0, true, 0, false
		case k == "*":
			args = append(args, words[i])
		case !strings.HasPrefix(k, strings.ToLower(words[i])):
			return nil, i, false, 0, false
		case k == strings.ToLower(words[i]):
			exact++
		}
	}
	if len(words) > len(kws) {
		return nil, len(kws), false, 0, false
	}
	return args, 0, false, exact, true
}

// invalid prints IOS's caret under column col of the line (0-based).
func (s *iosSession) invalid(col int) {
	s.t.println(strings.Repeat(" ", len(s.prompt())+col) + "^")
	s.t.println("% Invalid input detected at '^' marker.")
	s.t.println("")
}

// out prints lines through the pager, filtered by an include expression.
func (s *iosSession) out(filter string, lines ...string) bool {
	if filter != "" {
		re, err := regexp.Compile(filter)
		if err != nil {
			s.t.println("% Invalid regular expression")
			return true
		}
		var keep []string
		for _, l := range lines {
			if re.MatchString(l) {
				keep = append(keep, l)
			}
		}
		lines = keep
	}
	// The pager's prompt is erased with backspaces, spaces and backspaces.
	const more = " --More-- "
	erase := strings.Repeat("\b", len(more)) + strings.Repeat(" ", len(more)) + strings.Repeat("\b", len(more))
	return s.t.pager(lines, s.termLen, more, erase)
}

func (s *iosSession) enable(_ []string, _ string) bool {
	if s.d.EnableSecret == "" {
		s.mode = modePriv
		return true
	}
	prompt := s.d.EnablePrompt
	if prompt == "" {
		prompt = "Password: "
	}
	for range 3 {
		s.t.print(prompt)
		pw, _, ok := s.t.readLine(true)
		if !ok {
			return false
		}
		if pw == s.d.EnableSecret {
			s.mode = modePriv
			return true
		}
	}
	s.t.println("% Bad secrets")
	s.t.println("")
	return true
}

func (s *iosSession) terminalLength(a []string, _ string) bool {
	n, err := strconv.Atoi(a[0])
	if err != nil || n < 0 || n > 512 {
		s.invalid(len("terminal length "))
		return true
	}
	s.termLen = n
	return true
}

func (s *iosSession) showVersion(_ []string, f string) bool {
	h := s.d.hostname()
	return s.out(f,
		"Cisco IOS-like Software (sshjobs devicetest), Version 15.2(4)M7",
		"Copyright (c) 2026 by the sshjobs tests",
		"",
		h+" uptime is 1 hour, 2 minutes",
		`System image file is "flash:devicetest.bin"`,
		"Processor board ID TEST0001",
		"2 FastEthernet interfaces",
		"Configuration register is 0x2102")
}

func (s *iosSession) showRun(_ []string, f string) bool {
	s.d.mu.Lock()
	st := s.d.state
	lines := []string{"!", "hostname " + st.hostname, "!"}
	names := make([]string, 0, len(st.ifaces))
	for n := range st.ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		i := st.ifaces[n]
		lines = append(lines, "interface "+n)
		if i.desc != "" {
			lines = append(lines, " description "+i.desc)
		}
		if i.addr != "" {
			lines = append(lines, " ip address "+i.addr)
		} else {
			lines = append(lines, " no ip address")
		}
		if i.shutdown {
			lines = append(lines, " shutdown")
		}
		lines = append(lines, "!")
	}
	s.d.mu.Unlock()
	lines = append(lines, "end")
	if f == "" {
		lines = append([]string{"Building configuration...", "", fmt.Sprintf("Current configuration : %d bytes", len(strings.Join(lines, "\n")))}, lines...)
	}
	return s.out(f, lines...)
}

// LoggingLines is how many lines `show logging` prints.
const LoggingLines = 150

// LoggingLine is line n (1-based) of `show logging`.
func LoggingLine(n int) string {
	return fmt.Sprintf("%06d: *Dec  2 07:%02d:%02d.%03d: %%LINK-3-UPDOWN: Interface FastEthernet0/1, changed state to up (event %d)", n, n/60, n%60, n, n)
}

func (s *iosSession) showLogging(_ []string, f string) bool {
	lines := []string{"Syslog logging: enabled", ""}
	for n := 1; n <= LoggingLines; n++ {
		lines = append(lines, LoggingLine(n))
	}
	return s.out(f, lines...)
}

// ping prints an echo (!) per interval, up to repeat (5 by default); ^C or
// IOS's Ctrl-Shift-6 stops it.
func (s *iosSession) ping(a []string, _ string) bool {
	count := 5
	if len(a) == 3 && strings.HasPrefix("repeat", a[1]) {
		n, err := strconv.Atoi(a[2])
		if err != nil || n < 1 {
			s.invalid(len("ping " + a[0] + " " + a[1] + " "))
			return true
		}
		count = n
	} else if len(a) != 1 {
		s.invalid(len("ping " + a[0] + " "))
		return true
	}
	every := s.d.PingInterval
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	s.t.println("Type escape sequence to abort.")
	s.t.println(fmt.Sprintf("Sending %d, 100-byte ICMP Echos to %s, timeout is 2 seconds:", count, a[0]))
	sent := 0
	for sent < count {
		k, got, eof := s.t.keyWithin(every)
		if eof {
			return false
		}
		if got && (k == ctrlC || k == ctrlShift) {
			break
		}
		s.t.print("!")
		sent++
		if sent%70 == 0 && sent < count {
			s.t.print("\r\n")
		}
	}
	s.t.println("")
	s.t.println(fmt.Sprintf("Success rate is 100 percent (%d/%d), round-trip min/avg/max = 1/1/2 ms", sent, sent))
	return true
}
