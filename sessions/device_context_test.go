package sessions

import "testing"

// holdAll feeds output to a contextHold the way exchanger.out does, cut
// into pieces of n bytes (and at line ends), and returns what it let
// through; prompt: the prompt followed (drop), else the output ended
// (flush).
func holdAll(output string, n int, prompt bool) string {
	var h contextHold
	var got []byte
	for len(output) > 0 {
		piece := output[:min(n, len(output))]
		output = output[len(piece):]
		forLines([]byte(piece), func(seg []byte, whole bool) { got = append(got, h.feed(seg, whole)...) })
	}
	if prompt {
		h.drop()
	} else {
		got = append(got, h.flush()...)
	}
	return string(got)
}

// Junos's context lines right before the prompt are dropped, in whatever
// pieces the output comes; the same lines in the middle of the output,
// and everything when no prompt came, are kept.
func TestContextHold(t *testing.T) {
	tests := []struct{ output, want string }{
		{"\n[edit]\n", ""},
		{"Entering configuration mode\n\n[edit]\n", "Entering configuration mode\n"},
		{"\n[edit interfaces ge-0/0/0]\n", ""},
		{"[edit interfaces ge-0/0/0]\n+   description uplink;\n\n[edit]\n", "[edit interfaces ge-0/0/0]\n+   description uplink;\n"},
		{"a\n\n\nb\n\n[edit]\n", "a\n\n\nb\n"},
		{"[edit a]\n[edit b]\n", "[edit a]\n"},
		{"\n[edit]\nx\n\n[edit]\n", "\n[edit]\nx\n"},
		{"[edit] x\n[editor]\n[edit\n", "[edit] x\n[editor]\n[edit\n"},
		{"a\n\n", "a\n"},
	}
	for _, tt := range tests {
		for n := 1; n <= len(tt.output); n++ {
			if got := holdAll(tt.output, n, true); got != tt.want {
				t.Errorf("%q in pieces of %d: %q, want %q", tt.output, n, got, tt.want)
				break
			}
			if got := holdAll(tt.output, n, false); got != tt.output {
				t.Errorf("%q in pieces of %d without a prompt: %q", tt.output, n, got)
				break
			}
		}
	}
}
