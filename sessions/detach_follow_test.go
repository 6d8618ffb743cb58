package sessions_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// seqOutput is what `seq FROM TO` prints.
func seqOutput(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// allOutput reads the whole stored output of a job (e.output stops at 1 MiB).
func (e *engine) allOutput(t testing.TB, id string) string {
	t.Helper()
	var b strings.Builder
	for {
		out, err := e.Read(context.Background(), id, int64(b.Len()), 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Data) == 0 {
			return b.String()
		}
		b.Write(out.Data)
	}
}

// TestDetachedFollowPacing covers the follow's rounds (detach_scripts.go):
// bulk output whose end comes while it streams (rounds without a sleep),
// output that arrives just before the end after an idle spell (a job that
// ends between polls), and a resume after a dropped connection from an
// offset past 1 MiB into bulk output. Every byte arrives exactly once, the
// exit code is the job's, and the spool is gone once the job is final, its
// background removal included.
func TestDetachedFollowPacing(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		spool := t.TempDir()
		pool := newDetachPool(t, srv.SSHConfig, spool)
		e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
		// What an earlier background removal left when it was cut short.
		sshtest.WriteFile(t, filepath.Join(spool, ".01a23730-0000-7000-8000-000000000000.removed", "out"), "old output")
		check := func(name string, j *jobs.Job, want, code string) {
			t.Helper()
			if got := e.allOutput(t, j.ID); got != want {
				t.Errorf("%s: %d bytes stored, want %d; first difference at %d", name, len(got), len(want), firstDifference(got, want))
			}
			if exitCode(j) != code {
				t.Errorf("%s: %s exit %s (%s), want exit %s", name, j.State, exitCode(j), j.Error, code)
			}
			if a := attachOf(t, j); a.Spool != "" {
				spoolGone(t, name+": ", a.Spool)
			}
		}

		// 2.7 MB at once, then the end: the last round sends in bulk.
		bulk := e.waitFor(t, e.enqueue(t, srv.Alias, "seq 1 400000; printf end; exit 6", true).ID, -1, 60*time.Second)
		check("bulk", bulk, seqOutput(1, 400000)+"end", "6")

		// Output after an idle spell, the last of it as the job ends.
		idle := e.waitFor(t, e.enqueue(t, srv.Alias, "printf a; sleep 0.3; printf b; sleep 0.05; printf c", true).ID, -1, 30*time.Second)
		check("idle", idle, "abc", "0")

		// A resume at an offset past 1 MiB (dd skips whole MiBs, then the
		// rest), into a second bulk part.
		gate := filepath.Join(t.TempDir(), "gate")
		d := e.enqueue(t, srv.Alias, fmt.Sprintf("seq 1 200000; until [ -e %s ]; do sleep 0.05; done; seq 200001 500000", gate), true)
		first := int64(len(seqOutput(1, 200000)))
		e.waitFor(t, d.ID, first-1, 30*time.Second)
		srv.DropConnections()
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		check("resumed", e.waitFor(t, d.ID, -1, 60*time.Second), seqOutput(1, 500000), "0")

		// The spools' hidden leftovers go too (deleted in the background),
		// and the one an earlier removal left.
		deadline := time.Now().Add(20 * time.Second)
		for {
			left, err := os.ReadDir(spool)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("spool folder still holds %v", left)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func firstDifference(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
