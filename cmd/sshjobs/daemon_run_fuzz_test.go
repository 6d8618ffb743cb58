package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"testing"
)

// frame is one frame of a run stream as the daemon writes it.
func frame(kind byte, data []byte) []byte {
	b := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(data)))
	return append(b, data...)
}

// FuzzRunFrames: whatever the daemon's stream holds, a front's follow ends
// with the job's end or an error, never a panic, and writes no more output
// than the stream's output frames carry, in their order.
func FuzzRunFrames(f *testing.F) {
	out := func(off uint64, s string) []byte {
		b := binary.BigEndian.AppendUint64(nil, off)
		return frame(frameOutput, append(b, s...))
	}
	f.Add(bytes.Join([][]byte{out(0, "hello\n"), frame(frameNote, []byte("a note")), out(6, "world\n"),
		frame(frameEnd, []byte(`{"id":"j1","state":"succeeded","exit_code":0}`))}, nil))
	f.Add(frame(frameEnd, []byte(`{"id":"j1","state":"failed","exit_code":3,"output_lost":12}`)))
	f.Add(append(out(0, "cut"), 'o', 0, 0))
	f.Add(frame(frameOutput, []byte("short")))
	f.Add([]byte{'j', 0xff, 0xff, 0xff, 0xff})
	f.Add(frame('x', nil))
	f.Fuzz(func(t *testing.T, stream []byte) {
		s := &runStream{r: bufio.NewReader(bytes.NewReader(stream)), id: "j1"}
		var stdout, stderr bytes.Buffer
		j, err := s.follow(context.Background(), func() {}, false, &stdout, &stderr)
		if err == nil && j == nil {
			t.Fatal("no end and no error")
		}
		// The output frames before the end, re-read from the stream.
		var want []byte
		for rest := stream; len(rest) >= 5; {
			n := binary.BigEndian.Uint32(rest[1:5])
			if n > maxFrame || uint64(len(rest)-5) < uint64(n) || rest[0] == frameEnd {
				break
			}
			if rest[0] == frameOutput {
				if n < 8 {
					break
				}
				want = append(want, rest[5+8:5+n]...)
			} else if rest[0] != frameNote {
				break
			}
			rest = rest[5+n:]
		}
		if !bytes.Equal(stdout.Bytes(), want) {
			t.Fatalf("wrote %q, the stream's output frames hold %q", stdout.Bytes(), want)
		}
	})
}
