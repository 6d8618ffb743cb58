package sessions

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

func TestMarkerScanner(t *testing.T) {
	const nonce = "0123456789abcdef"
	tests := []struct {
		name, in, out string
		want          markerEnd
	}{
		{"plain", "junk\x1eB_" + nonce + "\x1ehello\r\n\x1eE_" + nonce + "_0_/tmp\x1e\r\n", "hello\r\n", markerEnd{ExitCode: 0, HasCode: true, Cwd: "/tmp"}},
		{"no newline", "\x1eB_" + nonce + "\x1eno newline\x1eE_" + nonce + "_3_/\x1e", "no newline", markerEnd{ExitCode: 3, HasCode: true, Cwd: "/"}},
		{"fake markers", "\x1eB_" + nonce + "\x1e\x1eE_ffffffffffffffff_0_/\x1e\x1eP_x\x1e\x1e\x1eE_" + nonce + "_1_/a_b\x1e", "\x1eE_ffffffffffffffff_0_/\x1e\x1eP_x\x1e\x1e", markerEnd{ExitCode: 1, HasCode: true, Cwd: "/a_b"}},
		{"aborted", "\x1eB_" + nonce + "\x1eerror\r\n\x1eP_" + nonce + "\x1e", "error\r\n", markerEnd{Aborted: true}},
		{"newline in cwd", "\x1eB_" + nonce + "\x1e\x1eE_" + nonce + "_0_/a\r\nb\x1e", "", markerEnd{HasCode: true, Cwd: "/a\nb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for size := 1; size <= len(tt.in); size++ {
				m := newMarkerScanner(nonce)
				var out []byte
				done := false
				for i := 0; i < len(tt.in) && !done; i += size {
					var o []byte
					o, done = m.Feed([]byte(tt.in[i:min(i+size, len(tt.in))]))
					out = append(out, o...)
				}
				if !done || string(out) != tt.out || m.result != tt.want || m.err != nil {
					t.Fatalf("chunks of %d: done %v out %q result %+v err %v; want %q %+v", size, done, out, m.result, m.err, tt.out, tt.want)
				}
			}
		})
	}
}

// FuzzMarker feeds output with fake markers around a real end marker, split
// at random points: the real marker is found exactly once and the output
// before it is passed through exactly.
func FuzzMarker(f *testing.F) {
	f.Add([]byte("hello\r\n"), []byte{3, 7, 1}, uint8(0))
	f.Add([]byte("\x1eE_0123456789abcdee_0_/\x1e\x1eB_"), []byte{1, 1, 1, 2}, uint8(42))
	f.Add([]byte("\x1e\x1eE_0123456789abcd"), []byte{19, 1}, uint8(255))
	f.Add([]byte("\x1eP_0123456789abcde\x1e\x1e"), []byte{5}, uint8(1))
	f.Fuzz(func(t *testing.T, output, cuts []byte, code uint8) {
		const nonce = "0123456789abcdef"
		// Output cannot hold the real markers (their nonce is secret).
		for _, mk := range [][]byte{endPrefix(nonce), promptMarker(nonce)} {
			if i := bytes.Index(output, mk); i >= 0 {
				output = output[:i]
			}
		}
		var in []byte
		in = append(in, "echo of typed text \\036B_"+nonce+"\\036\r\n"...)
		in = append(in, beginMarker(nonce)...)
		in = append(in, output...)
		in = append(in, endPrefix(nonce)...)
		in = append(in, strconv.Itoa(int(code))+"_/home/x\x1e\r\n\x1eP_"+nonce+"\x1e"...)
		in = append(in, "trailing junk"...)

		m := newMarkerScanner(nonce)
		var out []byte
		dones, pos := 0, 0
		feed := func(p []byte) {
			o, done := m.Feed(p)
			out = append(out, o...)
			if done {
				dones++
			}
		}
		for _, c := range cuts {
			if pos >= len(in) {
				break
			}
			n := min(int(c)+1, len(in)-pos)
			feed(in[pos : pos+n])
			pos += n
		}
		if pos < len(in) {
			feed(in[pos:])
		}
		if dones == 0 || m.err != nil {
			t.Fatalf("end not found (err %v)", m.err)
		}
		if !bytes.Equal(out, output) {
			t.Fatalf("output %q, want %q", out, output)
		}
		if m.result.Aborted || m.result.ExitCode != int(code) || m.result.Cwd != "/home/x" {
			t.Fatalf("result %+v", m.result)
		}
	})
}

func TestFrameCommandTypesOnlyPrintableASCII(t *testing.T) {
	var defined [256]bool
	defined[rs], defined['\n'] = true, true
	cmd := "cat <<'EOF'\n\tTab é \x03 '\"$x\\\nEOF" + strings.Repeat(" long", 300)
	text := frameCommand("0123456789abcdef", []byte(cmd), &defined)
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if len(line) > maxTypedLine+200 {
			t.Errorf("line %d is %d bytes", i, len(line))
		}
		for _, b := range []byte(line) {
			if b < 0x20 || b >= 0x7f {
				t.Fatalf("line %d types byte %#x: %q", i, b, line)
			}
		}
	}
	if strings.Contains(text, "\x1e") {
		t.Fatal("typed text holds a marker byte")
	}
	if !defined['\t'] || !defined[0x03] || !defined[0xc3] {
		t.Error("byte variables not recorded")
	}
}
