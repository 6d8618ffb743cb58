package term

import (
	"bytes"
	"testing"
)

// FuzzCleaner checks the cleaner's invariants on arbitrary input: it never
// panics, its output holds no ESC and no CR, and splitting the input anywhere
// gives the same output as one write.
func FuzzCleaner(f *testing.F) {
	for _, s := range []string{
		"Hello World\r\n",
		"10%\r50%\r100%\n",
		"\x1b[01;34mbin\x1b[0m\r\n",
		"\x1b]0;title\x07x\x1b]8;;u\x1b\\y\n",
		"\x1b[?2004h\x1b(B\x1b7\x1bPq\x1b\\",
		"a\bb\tc\x00\x7f\xff\xfe",
		"\x1b]" + string(bytes.Repeat([]byte("z"), 300)),
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		var whole Cleaner
		want := append(whole.Write(in), whole.Flush()...)
		if i := bytes.IndexAny(want, "\x1b\r"); i >= 0 {
			t.Fatalf("output holds %q at %d: %q", want[i], i, want)
		}

		at := 0
		if len(in) > 0 {
			at = int(split) % (len(in) + 1)
		}
		var parts Cleaner
		got := parts.Write(in[:at])
		// Byte by byte after the split point exercises every carried state.
		for i := at; i < len(in); i++ {
			got = append(got, parts.Write(in[i:i+1])...)
		}
		got = append(got, parts.Flush()...)
		if !bytes.Equal(got, want) {
			t.Fatalf("split at %d: %q, one write: %q", at, got, want)
		}

		// Printable ASCII and every byte >= 0x80 outside escape sequences
		// survive: with no ESC, CR or BS in the input, the output has the
		// input's non-control bytes in order.
		if bytes.IndexAny(in, "\x1b\r\b") < 0 {
			var kept []byte
			for _, b := range in {
				if b >= 0x20 && b != 0x7f || b == '\n' || b == '\t' {
					kept = append(kept, b)
				}
			}
			if !bytes.Equal(want, kept) {
				t.Fatalf("lost bytes: got %q, want %q", want, kept)
			}
		}
	})
}
