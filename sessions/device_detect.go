package sessions

import (
	"bytes"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/internal/term"
)

// deviceQuiet is how long a starting shell's output must be quiet before
// it is checked for a network device's CLI (deviceDetector).
const deviceQuiet = 500 * time.Millisecond

// deviceDetector watches what a starting shell prints for the signs of a
// network device's CLI that got the init script instead of a shell: the
// last line is a device prompt (learnPrompt), and the device either
// rejected a line with an error message or showed that prompt before,
// echoing after it a line of the script that no POSIX shell echoes
// (echoFree). A POSIX shell does neither: its prompt is gone (PS1=) once
// the script's first lines ran. A shell that is only slow may sit at its
// prompt, after echoing the first lines with its line editor (zsh's zle
// echoes two), for longer than deviceQuiet on a loaded host: that is no
// sign. It is judged only once the output went quiet, without the shell's
// ready marker.
type deviceDetector struct {
	cl       term.Cleaner
	lines    []string        // the last whole lines, at most detectLines
	echoFree map[string]bool // echoFreeLines of the init script
	errSeen  bool
}

// echoFreeLines returns the init script's lines, trimmed, that a POSIX
// shell never echoes: those after `stty -echo`. By then every line editor
// is off (bash's after the first line, zsh's after the second, busybox
// ash's once the terminal's echo is off) and so is the terminal's echo. A
// device's CLI echoes each line it reads after its prompt.
func echoFreeLines(script string) map[string]bool {
	m := map[string]bool{}
	after := false
	for l := range strings.Lines(script) {
		l = strings.TrimSpace(l)
		if after && l != "" {
			m[l] = true
		}
		after = after || strings.HasPrefix(l, "stty -echo")
	}
	return m
}

const detectLines = 64

func (d *deviceDetector) add(p []byte) {
	for l := range bytes.Lines(d.cl.Write(p)) {
		line := strings.TrimRight(string(l), "\n")
		if deviceError().MatchString(strings.TrimSpace(line)) {
			d.errSeen = true
		}
		if len(d.lines) == detectLines {
			d.lines = append(d.lines[:0], d.lines[1:]...)
		}
		d.lines = append(d.lines, line)
	}
}

// device reports the device's prompt if what was printed is a device's.
func (d *deviceDetector) device() (devicePrompt, bool) {
	pend := string(d.cl.Pending())
	p, ok := learnPrompt(pend)
	if !ok {
		return devicePrompt{}, false
	}
	if d.errSeen {
		return p, true
	}
	for _, l := range d.lines {
		if echo, ok := strings.CutPrefix(l, pend); ok && d.echoFree[strings.TrimSpace(echo)] {
			return p, true
		}
	}
	return devicePrompt{}, false
}
