package keys

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"ls<enter>":             "ls\r",
		":wq<Enter>":            ":wq\r",
		"<esc>:q!<enter>":       "\x1b:q!\r",
		"<ctrl-c>":              "\x03",
		"<ctrl-z><ctrl-a>":      "\x1a\x01",
		"<up><down><pgdn>":      "\x1b[A\x1b[B\x1b[6~",
		"<f1><f5><f12>":         "\x1bOP\x1b[15~\x1b[24~",
		"a<<b>":                 "a<b>",
		"<<<enter>":             "<\r",
		"x>y":                   "x>y",
		"":                      "",
		"<tab><bs><del><space>": "\t\x7f\x1b[3~ ",
	} {
		got, err := Parse(in)
		if err != nil || string(got) != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"<nope>", "a<b", "<ctrl-1>", "<f13>"} {
		_, err := Parse(bad)
		if err == nil || !strings.Contains(err.Error(), "<enter>") || !strings.Contains(err.Error(), "<<") {
			t.Errorf("Parse(%q): %v; want an error listing the valid keys", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ls<enter>", "<<", "<", "<ctrl-c>", "a<b", "<f12><esc>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Parse(s)
		if err != nil {
			return
		}
		// Text without '<' passes through unchanged.
		if !strings.Contains(s, "<") && string(out) != s {
			t.Fatalf("Parse(%q) = %q", s, out)
		}
	})
}
