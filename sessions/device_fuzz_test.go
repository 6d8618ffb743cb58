package sessions

import (
	"strings"
	"testing"
)

// FuzzLearnPrompt: the learner never panics; a learned prompt matches the
// line it was learned from, never a line with a line break, and its host
// is never empty.
func FuzzLearnPrompt(f *testing.F) {
	for _, s := range []string{"R1>", "R1(config-if)#", "admin@mx1> ", "(EdgeSwitch) (Config)#", "[admin@MikroTik] /ip address> ",
		"RP/0/RSP0/CPU0:xr1#", "$ ", "root@box:~# ", " --More-- ", "[a@b] >", "a.b-c#", "[@] >", "((x)) #"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		p, ok := learnPrompt(line)
		if !ok {
			return
		}
		if p.host == "" {
			t.Fatalf("learnPrompt(%q): empty host", line)
		}
		mode, ok := p.match(line)
		if !ok {
			t.Fatalf("learnPrompt(%q) does not match its own line", line)
		}
		if !strings.ContainsAny(mode, ">#") {
			t.Fatalf("learnPrompt(%q): mode %q has no > or #", line, mode)
		}
		for _, bad := range []string{line + "\n", "\n" + line, line + "\r" + line} {
			if _, ok := p.match(bad); ok {
				t.Fatalf("prompt of %q matches %q", line, bad)
			}
		}
	})
}

// FuzzPasswordPrompt: never panics; blanks after a line do not change the
// answer; a password prompt names one of secretWords.
func FuzzPasswordPrompt(f *testing.F) {
	for _, s := range []string{"Password:", "Enable Password:   ", "enable secret:", "R1>", "\xffpassword:", "İPASSWORD:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := passwordPrompt(line)
		if passwordPrompt(line+" \t ") != got {
			t.Fatalf("passwordPrompt(%q) = %v, but not with blanks after it", line, got)
		}
		lower := strings.ToLower(line)
		if got && !strings.Contains(lower, "password") && !strings.Contains(lower, "passwd") && !strings.Contains(lower, "secret") {
			t.Fatalf("passwordPrompt(%q) without a secret word", line)
		}
	})
}

// FuzzContextHold: whatever the output and however it is cut, nothing is
// lost or reordered when no prompt follows, and at the prompt only a tail
// of it is dropped.
func FuzzContextHold(f *testing.F) {
	for _, s := range []string{"\n[edit]\n", "a\n\n[edit x]\n", "[edit a]\n[edit b]\nc", "[ed\n]\n\n"} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, output string, n uint8) {
		size := int(n)%16 + 1
		if got := holdAll(output, size, false); got != output {
			t.Fatalf("%q in pieces of %d: %q", output, size, got)
		}
		if got := holdAll(output, size, true); !strings.HasPrefix(output, got) {
			t.Fatalf("%q in pieces of %d, at the prompt: %q is not a start of it", output, size, got)
		}
	})
}
