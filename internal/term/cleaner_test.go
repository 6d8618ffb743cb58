package term

import (
	"bytes"
	"strings"
	"testing"
)

func clean(in string) string {
	var c Cleaner
	out := c.Write([]byte(in))
	return string(append(out, c.Flush()...))
}

func TestCleaner(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Hello World\n", "Hello World\n"},
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"no final newline", "no newline", "no newline"},
		{"progress bar", "10%\r50%\r100%\n", "100%\n"},
		{"progress then crlf", "10%\r100%\r\n", "100%\n"},
		{"cr cr lf", "abc\r\r\n", "abc\n"},
		{"progress at end", "1/3\r2/3\r3/3", "3/3"},
		{"partial overwrite keeps last segment", "abcdef\rXY\n", "XY\n"},
		{"sgr colours", "\x1b[01;34mbin\x1b[0m  \x1b[1;32mrun\x1b[m\n", "bin  run\n"},
		{"bracketed paste", "\x1b[?2004hx\x1b[?2004l\r\n", "x\n"},
		{"osc bel", "\x1b]0;user@host: ~\x07prompt\n", "prompt\n"},
		{"osc st", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n", "link\n"},
		{"charset", "\x1b(Babc\x1b)0\n", "abc\n"},
		{"single char esc", "\x1b7a\x1b8\x1b=b\x1bMc\n", "abc\n"},
		{"dcs", "\x1bPq#0;2;0;0;0\x1b\\x\n", "x\n"},
		{"c0 dropped", "a\x00b\x07c\x0ed\x0fe\x7ff\n", "abcdef\n"},
		{"tab kept", "a\tb\n", "a\tb\n"},
		{"backspace", "abc\b\bXY\n", "aXY\n"},
		{"backspace utf8", "aé\bb\n", "ab\n"},
		{"backspace empty", "\b\ba\n", "a\n"},
		{"utf8", "héllo wörld ✓ 日本\n", "héllo wörld ✓ 日本\n"},
		{"binary high bytes", "\xff\xfe\x80\x9b\n", "\xff\xfe\x80\x9b\n"},
		{"csi interrupted by utf8", "\x1b[1é\n", "é\n"},
		{"newline inside csi executes", "a\x1b[1\n;2mb\n", "a\nb\n"},
		{"esc esc", "\x1b\x1b[31mred\n", "red\n"},
		{"can aborts", "\x1b[12\x18x\n", "x\n"},
		{"incomplete csi at end dropped", "abc\x1b[1", "abc"},
		{"unterminated osc at end is text", "a\x1b]not a title", "anot a title"},
		{"erase line after cr", "working...\r\x1b[Kdone\n", "done\n"},
		{"empty lines", "\n\n\r\n", "\n\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanerStreamsWholeLines(t *testing.T) {
	var c Cleaner
	if got := string(c.Write([]byte("one\ntw"))); got != "one\n" {
		t.Fatalf("first write = %q", got)
	}
	if got := string(c.Pending()); got != "tw" {
		t.Fatalf("pending = %q", got)
	}
	if got := string(c.Write([]byte("o\r\nthree\x1b["))); got != "two\n" {
		t.Fatalf("second write = %q", got)
	}
	if got := string(c.Write([]byte("0m\n"))); got != "three\n" {
		t.Fatalf("third write = %q", got)
	}
}

func TestCleanerCommit(t *testing.T) {
	var c Cleaner
	c.Write([]byte("Password: "))
	if got := string(c.Commit()); got != "Password: " {
		t.Fatalf("commit = %q", got)
	}
	// A rewrite of a committed line cannot erase it: it starts a new line.
	got := string(c.Write([]byte("\r10%\r20%\n")))
	if got != "\n20%\n" {
		t.Fatalf("after commit = %q", got)
	}
	// A CRLF after a commit ends the line once.
	c.Write([]byte("x"))
	c.Commit()
	if got := string(c.Write([]byte("\r\n"))); got != "\n" {
		t.Fatalf("crlf after commit = %q", got)
	}
}

func TestCleanerLongLineIsEmitted(t *testing.T) {
	var c Cleaner
	long := bytes.Repeat([]byte("x"), MaxPendingLine+10)
	out := c.Write(long)
	if len(out) != MaxPendingLine {
		t.Fatalf("emitted %d bytes, want %d", len(out), MaxPendingLine)
	}
	out = append(out, c.Flush()...)
	if !bytes.Equal(out, long) {
		t.Fatal("long line changed")
	}
}

func TestCleanerUnterminatedOSCIsNotSwallowed(t *testing.T) {
	in := "\x1b]" + strings.Repeat("binary ", maxStringSeq/4) + "\n"
	got := clean(in)
	if got != strings.Repeat("binary ", maxStringSeq/4)+"\n" {
		t.Fatalf("got %d bytes %.40q...", len(got), got)
	}
}

func TestCleanerLsColor(t *testing.T) {
	in := "\x1b[0m\x1b[01;34mbin\x1b[0m\r\n\x1b[01;36mlib\x1b[0m\r\n"
	if got := clean(in); got != "bin\nlib\n" {
		t.Fatalf("got %q", got)
	}
}

// Discard drops the held line only: what came before is out, what comes
// after starts the line afresh (a pager's prompt, then its erasure).
func TestDiscard(t *testing.T) {
	var c Cleaner
	got := string(c.Write([]byte("line 1\r\n --More-- ")))
	c.Discard()
	got += string(c.Write([]byte("\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bline 2\r\n")))
	if got != "line 1\nline 2\n" {
		t.Errorf("got %q", got)
	}
}
