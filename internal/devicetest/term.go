// Package devicetest runs small network-device CLIs for tests: an IOS-like
// one (ios.go), a RouterOS-like one (routeros.go) and a Junos-like one
// (junos.go). They are not shells: like a router's or a switch's, each
// reads keystrokes, echoes them itself, answers at its own prompt, pages
// long output and streams some commands until a key stops them. Serve runs one over any byte stream (an in-process
// SSH channel, see sshtest.Options.Serve); HelperMain runs one on a real
// terminal behind OpenSSH's sshd (ForceCommand). Tests only.
package devicetest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Log records the command lines a CLI ran, as it received them (after line
// editing), so that a test can see what a client really typed.
type Log struct {
	mu    sync.Mutex // protects lines
	lines []string
}

func (l *Log) add(s string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

// Lines returns the lines so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Keys sent by a client to stop a command.
const (
	ctrlC     = 0x03
	ctrlShift = 0x1e // Ctrl-Shift-6, IOS's escape sequence
	ctrlZ     = 0x1a
)

// term is the device's side of a terminal: keystrokes in, text out. A reader
// goroutine feeds keys, so that a streaming command can watch for one while
// it prints.
type term struct {
	w    io.Writer
	keys chan byte // closed at EOF
	// lastCR: the previous key was CR, so a LF right after it is the same
	// Enter (a PTY's ICRNL, or a client sending CRLF).
	lastCR bool
}

func newTerm(r io.Reader, w io.Writer) *term {
	t := &term{w: w, keys: make(chan byte, 4096)}
	go func() {
		defer close(t.keys)
		buf := make([]byte, 1024)
		for {
			n, err := r.Read(buf)
			for _, b := range buf[:n] {
				t.keys <- b
			}
			if err != nil {
				return
			}
		}
	}()
	return t
}

func (t *term) print(s string) { io.WriteString(t.w, s) }

// println writes s and a CRLF, as a device's terminal does.
func (t *term) println(s string) { t.print(s + "\r\n") }

// key returns the next key; ok is false at EOF.
func (t *term) key() (byte, bool) {
	b, ok := <-t.keys
	return b, ok
}

// keyWithin returns a key that arrives within d, if any.
func (t *term) keyWithin(d time.Duration) (b byte, got, eof bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case b, ok := <-t.keys:
		return b, ok, !ok
	case <-timer.C:
		return 0, false, false
	}
}

// readLine reads one line, echoing it unless secret. Backspace erases; an
// escape sequence (an arrow key) is dropped. ctrl reports a control key that
// ends the line without Enter (^C, ^Z); the line read so far comes with it.
func (t *term) readLine(secret bool) (line string, ctrl byte, ok bool) {
	var b []byte
	for {
		k, ok := t.key()
		if !ok {
			return string(b), 0, false
		}
		wasCR := t.lastCR
		t.lastCR = k == '\r'
		switch {
		case k == '\n' && wasCR:
			continue
		case k == '\r' || k == '\n':
			t.print("\r\n")
			return string(b), 0, true
		case k == 0x7f || k == '\b':
			if len(b) > 0 {
				b = b[:len(b)-1]
				if !secret {
					t.print("\b \b")
				}
			}
		case k == ctrlC || k == ctrlZ:
			return string(b), k, true
		case k == 0x1b:
			// ESC [ X: an arrow key; nothing of it is shown.
			if n, _ := t.key(); n == '[' {
				t.key()
			}
		case k < 0x20:
		default:
			b = append(b, k)
			if !secret {
				t.print(string(k))
			}
		}
	}
}

// lines is a CLI's read loop: its prompt, a line, run. A control key (after
// a line end) or an empty line shows the prompt again; each line run goes
// to log. It ends at EOF or when run reports false.
func (t *term) lines(prompt func() string, log *Log, run func(line string) bool) {
	for {
		t.print(prompt())
		line, ctrl, ok := t.readLine(false)
		if !ok {
			return
		}
		if ctrl != 0 || strings.TrimSpace(line) == "" {
			if ctrl != 0 {
				t.print("\r\n")
			}
			continue
		}
		log.add(line)
		if !run(line) {
			return
		}
	}
}

// pager prints lines, pageLen-1 at a time (0: all) with the pager's own
// prompt below each page, waiting for a key there: space a page, Enter a
// line, q stops, d dumps the rest (RouterOS). erase is printed after the
// key, to take the pager's prompt off the line. It reports false at EOF.
func (t *term) pager(lines []string, pageLen int, prompt, erase string) bool {
	left := pageLen - 1
	for i, l := range lines {
		if pageLen > 0 && left == 0 && i < len(lines) {
			t.print(prompt)
			k, ok := t.key()
			if !ok {
				return false
			}
			t.print(erase)
			switch k {
			case ' ':
				left = pageLen - 1
			case 'q', 'Q', ctrlC:
				return true
			case 'd', 'D':
				pageLen = 0
			default:
				left = 1
			}
		}
		t.println(l)
		left--
	}
	return true
}

// fields splits a command line into words, keeping "quoted strings" (with
// their quotes) whole. open is the column (1-based) of a quote that is never
// closed, or 0.
func fields(line string) (words []string, cols []int, open int) {
	i := 0
	for i < len(line) {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			if line[i] == '"' {
				j := strings.IndexByte(line[i+1:], '"')
				if j < 0 {
					return words, cols, i + 1
				}
				i += j + 1
			}
			i++
		}
		words = append(words, line[start:i])
		cols = append(cols, start+1)
	}
	return words, cols, 0
}

// EnvDevice names the CLI HelperMain runs: "ios", "routeros" or "junos".
// EnvEnableSecret is the IOS-like CLI's enable secret there.
const (
	EnvDevice       = "SSHJOBS_TEST_DEVICE"
	EnvEnableSecret = "SSHJOBS_TEST_DEVICE_ENABLE"
)

// HelperMain, called from a test named TestHelperDevice, turns the test
// binary into a device CLI when EnvDevice is set: sshd's ForceCommand runs
// it on the session's terminal (SSH_ORIGINAL_COMMAND is an exec request's
// command). The terminal is put in raw mode without echo, as a device's
// CLI does: it reads each key and echoes it itself.
func HelperMain() {
	kind := os.Getenv(EnvDevice)
	if kind == "" {
		return
	}
	var serve func(io.ReadWriter, string)
	switch kind {
	case "ios":
		serve = (&IOS{EnableSecret: os.Getenv(EnvEnableSecret)}).Serve
	case "routeros":
		serve = (&RouterOS{}).Serve
	case "junos":
		serve = (&Junos{}).Serve
	default:
		fmt.Fprintln(os.Stderr, "devicetest: unknown device", kind)
		os.Exit(2)
	}
	command := os.Getenv("SSH_ORIGINAL_COMMAND")
	if command == "" {
		stty := exec.Command("stty", "raw", "-echo")
		stty.Stdin = os.Stdin
		if err := stty.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "devicetest: stty:", err)
			os.Exit(2)
		}
	}
	serve(stdio{}, command)
	os.Exit(0)
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
