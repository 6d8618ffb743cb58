package main

import (
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// A job that ran reports at least 1 ms: duration_ms 0 says it never started
// (a warm `true` ends within a millisecond, and then looked like a job that
// was cancelled while queued).
func TestDurationMS(t *testing.T) {
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		j    jobs.Job
		want int64
	}{
		{"never started", jobs.Job{}, 0},
		{"ended within a millisecond", jobs.Job{StartedAt: start, EndedAt: start.Add(300 * time.Microsecond)}, 1},
		{"exactly 2 ms", jobs.Job{StartedAt: start, EndedAt: start.Add(2 * time.Millisecond)}, 2},
		{"2.1 ms", jobs.Job{StartedAt: start, EndedAt: start.Add(2100 * time.Microsecond)}, 3},
		{"running 1.5 s", jobs.Job{StartedAt: start}, 1500},
	} {
		if got := durationMS(&c.j, start.Add(1500*time.Millisecond)); got != c.want {
			t.Errorf("%s: duration_ms %d, want %d", c.name, got, c.want)
		}
	}
}
