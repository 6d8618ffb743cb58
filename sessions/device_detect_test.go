package sessions

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// typedAfter returns what a CLI that echoes each line after its prompt
// prints for the script's lines: prompt, line, CRLF, then reply (if any)
// after each, and the prompt again at the end.
func typedAfter(prompt, script, reply string, lines int) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if i == lines {
			break
		}
		b.WriteString(prompt + l + "\r\n")
		if reply != "" {
			b.WriteString(reply + "\r\n")
		}
	}
	return b.String() + prompt
}

func TestDeviceDetector(t *testing.T) {
	script := initScript("0123456789abcdef")
	cases := []struct {
		name, out string
		device    bool
	}{
		// zsh at its prompt (Debian's %m# as root) after its zle echoed
		// the first two lines, then held up on the third (stty, a new
		// process) by a loaded host: seen in TestPoolShells/zsh under
		// load, which then ran every job as a device's (no exit codes).
		{"slow zsh", typedAfter("vm# ", script, "", 2), false},
		{"slow zsh, one line", typedAfter("vm# ", script, "", 1), false},
		{"bash before its first line", "host# ", false},
		// A device echoes every line after its prompt.
		{"device echoes the script", typedAfter("R1#", script, "", 99), true},
		{"device rejects a line", typedAfter("R1>", script, "% Invalid input detected at '^' marker.", 1), true},
		{"routeros rejects a line", typedAfter("[admin@MikroTik] > ", script, "bad command name set (line 1 column 2)", 1), true},
	}
	for _, c := range cases {
		det := deviceDetector{echoFree: echoFreeLines(script)}
		det.add([]byte(c.out))
		if _, got := det.device(); got != c.device {
			t.Errorf("%s: device %v, want %v; output %q", c.name, got, c.device, c.out)
		}
	}
}

// The lines no POSIX shell echoes are there: the detector's echo rule
// depends on the init script keeping `stty -echo` before them.
func TestEchoFreeLines(t *testing.T) {
	free := echoFreeLines(initScript("0123456789abcdef"))
	for _, l := range []string{"unset TMOUT 2>/dev/null", "PS1= ; PS2= ; PS3= ; PS4='+ '"} {
		if !free[l] {
			t.Errorf("%q is not among the echo-free lines %v", l, free)
		}
	}
	for l := range free {
		if strings.Contains(l, "ZSH_VERSION") || strings.HasPrefix(l, "set +o") || strings.HasPrefix(l, "stty") {
			t.Errorf("%q is echoed by a shell's line editor, but is among the echo-free lines", l)
		}
	}
}

// A shell that stops at its prompt for longer than deviceQuiet, after its
// line editor echoed the script's first lines, is still a shell: waitReady
// waits for its ready marker.
func TestWaitReadySlowShell(t *testing.T) {
	nonce := "0123456789abcdef"
	script := initScript(nonce)
	s := &shell{name: "slow", logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		chunks: make(chan []byte, 4), writes: make(chan writeReq, 4), startedAt: time.Now()}
	s.chunks <- []byte(typedAfter("vm# ", script, "", 2))
	go func() {
		time.Sleep(3 * deviceQuiet)
		s.chunks <- []byte("vm# \x1eR_" + nonce + "_4242\x1e")
	}()
	err := s.waitReady(context.Background(), readyPrefix(nonce), script)
	if np := (*notPOSIXError)(nil); errors.As(err, &np) {
		t.Fatalf("a slow shell was taken for a device: %v", err)
	}
	if err != nil || s.pid != 4242 {
		t.Fatalf("waitReady: %v, pid %d; want the marker's pid 4242", err, s.pid)
	}
}
