package sessions

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// render is what a fresh emulator fed all of out shows: the reference the
// screen's shortcuts must match.
func render(cols, rows int, out string) []string {
	s := newScreen(cols, rows)
	s.emu = newEmulator(cols, rows)
	defer s.drop()
	s.emu.WriteString(out)
	s.fed, s.total = 0, 0
	return s.snapshot(time.Now(), func(l string) string { return l }).Lines
}

// The screen is built from the tail when asked, fed incrementally between
// asks, and matches an emulator that saw every byte: for plain text past
// the tail (its last lines only), on the alternate screen entered before
// the tail, and for cursor drawing between asks.
func TestScreenCore(t *testing.T) {
	const cols, rows = 40, 10
	var all strings.Builder
	s := newScreen(cols, rows)
	write := func(p string) {
		all.WriteString(p)
		s.write([]byte(p), time.Now())
	}
	ask := func(what string, alt bool) {
		t.Helper()
		got := s.snapshot(time.Now(), func(l string) string { return l })
		want := render(cols, rows, all.String())
		if !slices.Equal(got.Lines, want) || got.Alternate != alt {
			t.Fatalf("%s: got alternate %v\n%s\nwant alternate %v\n%s", what, got.Alternate, strings.Join(got.Lines, "\n"), alt, strings.Join(want, "\n"))
		}
	}
	defer s.drop()

	write("\x1b[?1049h") // leaves the tail below
	for i := range 8000 {
		write(fmt.Sprintf("line %d: %s\r\n", i, strings.Repeat("ab", i%30)))
	}
	if len(s.tail) > 2*screenTail {
		t.Fatalf("the tail holds %d bytes", len(s.tail))
	}
	ask("past the tail", true)

	write("\x1b[H\x1b[2Jtop row\x1b[5;3Hmiddle\x1b[31m red\x1b[0m")
	ask("drawn between asks", true)
	write("\r\nmore\x1b[?1049l")
	ask("back on the main screen", false)
	for i := range 3 {
		write(fmt.Sprintf("%d\r\n", i))
	}
	ask("a few lines", false)
	for i := range 100 {
		write(fmt.Sprintf("progress %d%%\r", i))
	}
	ask("a progress line", false)
}
