package sqlstore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
)

// appendAll stores data for job id in chunks of random sizes (1..maxChunk),
// sent in batches of random length interleaved with another job's output.
func appendAll(t testing.TB, db *DB, rng *rand.Rand, id, other string, data []byte, maxChunk int, cap int64) {
	t.Helper()
	ctx := context.Background()
	var batch []jobs.Chunk
	otherOff := int64(0)
	if other != "" {
		otherOff = get(t, db, other).OutputBytes
	}
	for off := 0; off < len(data); {
		n := min(1+rng.IntN(maxChunk), len(data)-off)
		batch = append(batch, jobs.Chunk{JobID: id, Offset: int64(off), Data: data[off : off+n]})
		off += n
		if other != "" && rng.IntN(3) == 0 {
			batch = append(batch, jobs.Chunk{JobID: other, Offset: otherOff, Data: []byte("noise")})
			otherOff += 5
		}
		if rng.IntN(4) == 0 || off == len(data) {
			if err := db.AppendOutput(ctx, batch, cap); err != nil {
				t.Fatalf("AppendOutput: %v", err)
			}
			batch = batch[:0]
		}
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// TestBigChunk checks that a chunk larger than a row is split and read back
// whole.
func TestBigChunk(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	rng := rand.New(rand.NewPCG(3, 4))
	j := insert(t, db, newJob("h", "s", "o", jobs.StateRunning))
	want := randomBytes(rng, 3*maxRow+123)
	if err := db.AppendOutput(ctx, []jobs.Chunk{{JobID: j.ID, Data: want}}, 0); err != nil {
		t.Fatal(err)
	}
	var rows, biggest int64
	if err := db.r.QueryRow("SELECT count(*), max(length(data)) FROM output_chunks WHERE job_id = ?", j.ID).Scan(&rows, &biggest); err != nil {
		t.Fatal(err)
	}
	if rows != 4 || biggest != maxRow {
		t.Errorf("%d rows, biggest %d; want 4 rows of at most %d", rows, biggest, maxRow)
	}
	for _, off := range []int64{0, 1, maxRow - 1, maxRow, maxRow + 1, 2*maxRow + 7, int64(len(want)) - 1} {
		out, err := db.ReadOutput(ctx, j.ID, off, MaxRead)
		if err != nil || !bytes.Equal(out.Data, want[off:]) {
			t.Fatalf("ReadOutput(%d): %d bytes, %v", off, len(out.Data), err)
		}
	}
	var seqs []int64
	r, err := db.r.Query("SELECT seq FROM output_chunks WHERE job_id = ? ORDER BY offset", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s int64
		r.Scan(&s)
		seqs = append(seqs, s)
	}
	r.Close()
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("seq %v, want 0, 1, 2, ...", seqs)
		}
	}
}

// TestOutputCap checks that past the cap a job keeps its exact head and the
// most recent output, with the gap between them recorded and readable.
func TestOutputCap(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		cap      int64
		size     int
		maxChunk int
	}{
		{"small chunks", 1000, 20000, 60},
		{"chunks across the head", 1001, 7000, 300},
		{"one huge chunk", 3 * maxRow, 10 * maxRow, 10 * maxRow},
		{"barely over", 1000, 1001, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openTest(t)
			rng := rand.New(rand.NewPCG(5, uint64(c.cap)))
			j := insert(t, db, newJob("h", "s", "o", jobs.StateRunning))
			o := insert(t, db, newJob("h", "s2", "o", jobs.StateRunning))
			want := randomBytes(rng, c.size)
			appendAll(t, db, rng, j.ID, o.ID, want, c.maxChunk, c.cap)

			head, tail := c.cap/2, c.cap-c.cap/2
			got := get(t, db, j.ID)
			n := int64(len(want))
			// The kept tail is at least the allowance (the most recent output is
			// never dropped, however big its row) and at most one row more.
			if got.OutputBytes != n || got.GapStart != head || n-got.GapEnd < tail || n-got.GapEnd >= tail+int64(min(c.maxChunk, maxRow)) {
				t.Fatalf("total %d, gap [%d, %d); want total %d, gap from %d, tail from %d to %d",
					got.OutputBytes, got.GapStart, got.GapEnd, n, head, tail, tail+int64(min(c.maxChunk, maxRow)))
			}
			var stored int64
			if err := db.r.QueryRow("SELECT sum(length(data)) FROM output_chunks WHERE job_id = ?", j.ID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored != head+n-got.GapEnd {
				t.Errorf("%d bytes stored, want %d", stored, head+n-got.GapEnd)
			}

			// The head reads up to the gap; a read in the gap skips to its end.
			out, err := db.ReadOutput(ctx, j.ID, 0, MaxRead)
			if err != nil || !bytes.Equal(out.Data, want[:head]) || out.Skipped != 0 {
				t.Fatalf("head: %d bytes, skipped %d, %v", len(out.Data), out.Skipped, err)
			}
			for _, off := range []int64{head, head + 1, got.GapEnd - 1} {
				out, err = db.ReadOutput(ctx, j.ID, off, MaxRead)
				if err != nil || out.Offset != got.GapEnd || out.Skipped != got.GapEnd-off || !bytes.Equal(out.Data, want[got.GapEnd:]) {
					t.Fatalf("read in the gap at %d: %d bytes at %d, skipped %d, %v", off, len(out.Data), out.Offset, out.Skipped, err)
				}
			}
			for off := got.GapEnd; off <= n; off += max(1, (n-got.GapEnd)/50) {
				out, err = db.ReadOutput(ctx, j.ID, off, 7)
				if err != nil || out.Skipped != 0 || !bytes.Equal(out.Data, want[off:min(off+7, n)]) {
					t.Fatalf("tail at %d: %q, %v", off, out.Data, err)
				}
			}
			// The other job in the same batches is capped on its own.
			if g := get(t, db, o.ID); (g.GapEnd != 0) != (g.OutputBytes > c.cap) {
				t.Errorf("other job: %d bytes, gap [%d, %d)", g.OutputBytes, g.GapStart, g.GapEnd)
			}
		})
	}
}

// TestCapAfterUncapped turns the cap on for a job that already has more than
// the head in one row: the row stays whole and the gap starts after it.
func TestCapAfterUncapped(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	j := insert(t, db, newJob("h", "s", "o", jobs.StateRunning))
	want := bytes.Repeat([]byte("0123456789"), 100)
	if err := db.AppendOutput(ctx, []jobs.Chunk{{JobID: j.ID, Data: want[:300]}}, 0); err != nil {
		t.Fatal(err)
	}
	for off := 300; off < len(want); off += 100 {
		if err := db.AppendOutput(ctx, []jobs.Chunk{{JobID: j.ID, Offset: int64(off), Data: want[off : off+100]}}, 200); err != nil {
			t.Fatal(err)
		}
	}
	got := get(t, db, j.ID)
	if got.GapStart != 300 || got.GapEnd != 900 {
		t.Fatalf("gap [%d, %d), want [300, 900)", got.GapStart, got.GapEnd)
	}
	out, err := db.ReadOutput(ctx, j.ID, 0, 1000)
	if err != nil || !bytes.Equal(out.Data, want[:300]) {
		t.Fatalf("head %q, %v", out.Data, err)
	}
}
