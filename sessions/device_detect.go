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
// echoing a line of the script after it. A POSIX shell does neither: its
// prompt is gone (PS1=) once the script's first lines ran, and a shell that
// has not run them yet shows its prompt once. It is judged only once the
// output went quiet, without the shell's ready marker.
type deviceDetector struct {
	cl      term.Cleaner
	lines   []string // the last whole lines, at most detectLines
	errSeen bool
}

const detectLines = 64

func (d *deviceDetector) add(p []byte) {
	for l := range bytes.Lines(d.cl.Write(p)) {
		line := strings.TrimRight(string(l), "\n")
		if deviceError.MatchString(strings.TrimSpace(line)) {
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
		if strings.HasPrefix(l, pend) && len(l) > len(pend) {
			return p, true
		}
	}
	return devicePrompt{}, false
}
