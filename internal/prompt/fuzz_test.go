package prompt

import (
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
)

var kinds = map[jobs.PromptKind]bool{
	jobs.PromptPassword: true, jobs.PromptConfirm: true, jobs.PromptPager: true,
	jobs.PromptPressKey: true, jobs.PromptQuestion: true,
}

// FuzzDetect checks Detect's invariants: it never panics; a prompt has a known
// kind and is the trimmed last line of the input, within MaxLine; only the
// last line matters; trailing blanks do not matter.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"Password: ", "[sudo] password for x: ", "Continue? [Y/n] ", ":", "(END)",
		"--More--(5%)", "Press any key", "Value: ", "password=secret", `"password": "x"`,
		"https://h/?password=x", "2024-01-01 INFO x:", "a\nb?", "lines 1-20/30 5%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := Detect(s)
		last := s
		if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
			last = s[i+1:]
		}
		if ok {
			if !kinds[p.Kind] {
				t.Fatalf("Detect(%q): unknown kind %q", s, p.Kind)
			}
			if p.Text == "" || len(p.Text) > MaxLine || p.Text != strings.TrimSpace(last) {
				t.Fatalf("Detect(%q): text %q is not the trimmed last line", s, p.Text)
			}
		}
		if p2, ok2 := Detect("earlier output\n" + last); ok2 != ok || p2 != p {
			t.Fatalf("Detect(%q) = %+v,%v but with other lines before: %+v,%v", s, p, ok, p2, ok2)
		}
		if p3, ok3 := Detect(last + "  "); ok3 != ok || p3 != p {
			t.Fatalf("Detect(%q) = %+v,%v but with trailing blanks: %+v,%v", s, p, ok, p3, ok3)
		}
	})
}
