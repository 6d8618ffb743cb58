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
	t.Parallel()
	// Lines of about 90 bytes on a wide screen: the tail overflows in a
	// few thousand of them, each one row (cheap to scroll, also under -race).
	const cols, rows = 100, 6
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
	for i := range 2000 {
		write(fmt.Sprintf("line %d: %s\r\n", i, strings.Repeat("ab", 30+i%10)))
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

// FuzzScreen feeds a screen what a remote may print, in two writes with an
// ask between: asking never panics, and the screen keeps its size.
func FuzzScreen(f *testing.F) {
	f.Add([]byte("hello\r\nworld"), []byte("\x1b[2J\x1b[5;5Hx"))
	f.Add([]byte("\x1b[?1049h\x1b[1;24r"), []byte("\x1b[24;1H\n\n\x1b[?1049l"))
	f.Add([]byte("\x1b]8;;http://x\x07link\x1b]8;;\x07"), []byte("\x1bP+q544e\x1b\\\x1b[6n\x1b[c"))
	f.Add([]byte("wide 日本語 e\u0301 \xff\xfe"), []byte("\x1b(0lqk\x1b(B\t\b\b\x1b[3g\x1b[99999;99999H"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := newScreen(30, 6)
		defer s.drop()
		s.write(a, time.Now())
		if _, err := s.take(time.Now(), func(l string) string { return l }); err != nil {
			t.Logf("ask: %v", err)
		}
		s.write(b, time.Now())
		sc, err := s.take(time.Now(), func(l string) string { return l })
		if err != nil {
			t.Skipf("the emulator failed: %v", err)
		}
		if sc.Rows != 6 || sc.Cols != 30 || len(sc.Lines) > 6 || sc.CursorRow < 0 || sc.CursorRow >= 6 || sc.CursorCol < 0 || sc.CursorCol >= 30 {
			t.Fatalf("screen %+v", sc)
		}
	})
}
