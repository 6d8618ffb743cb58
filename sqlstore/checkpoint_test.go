package sqlstore

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// TestCheckpointerBoundsLog streams 100 MB of output in back-to-back 4 MiB
// commits, as a job streaming at full speed does: the checkpointer copies
// the log beside them, and the writer's own checkpoint at ckptBound starts
// it over, so the log file stays well below SQLite's own bound (twice
// ckptBound) and every byte reads back. Once the writes stop, the
// checkpointer copies the rest: the database file holds it all.
func TestCheckpointerBoundsLog(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	id := insert(t, db, newJob("h", "s", "o", jobs.StateRunning)).ID
	const total = 100 << 20
	chunk := make([]byte, 256<<10)
	var walMax int64
	for off := 0; off < total; {
		var batch []jobs.Chunk
		for n := 0; n < 4<<20; n += len(chunk) {
			for i := range chunk {
				chunk[i] = byte(off + i)
			}
			batch = append(batch, jobs.Chunk{JobID: id, Offset: int64(off), Data: bytes.Clone(chunk)})
			off += len(chunk)
		}
		if err := db.AppendOutput(ctx, batch, 0); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(db.path + "-wal"); err == nil {
			walMax = max(walMax, fi.Size())
		}
	}
	t.Logf("largest log: %d MiB", walMax>>20)
	if walMax > ckptBound+16<<20 {
		t.Errorf("the log grew to %d MiB while output streamed; its bound is %d MiB", walMax>>20, ckptBound>>20)
	}
	for off := int64(0); off < total; off += 16 << 20 {
		out, err := db.ReadOutput(ctx, id, off, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range out.Data {
			if b != byte(off+int64(i)) {
				t.Fatalf("byte %d reads %d, want %d", off+int64(i), b, byte(off+int64(i)))
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(db.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file %d MiB after the writes stopped: the log was not copied", fi.Size()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
