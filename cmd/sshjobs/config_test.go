package main

import (
	"flag"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// Any zero duration for -retention keeps every job, as the usage says; not
// only the literal "0".
func TestRetentionZeroKeepsEverything(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", jobs.DefaultRetention},
		// Zero is what the engine reads as "keep everything" (jobs.Config).
		{"0", 0},
		{"0s", 0},
		{"0h", 0},
		{"0m0s", 0},
		{"720h", 720 * time.Hour},
	} {
		var c config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.register(fs)
		if err := fs.Parse([]string{"-retention=" + tc.v, "-db=/tmp/x.db"}); err != nil {
			t.Fatal(err)
		}
		if err := c.parse(); err != nil {
			t.Fatalf("%q: %v", tc.v, err)
		}
		if c.Retention != tc.want {
			t.Errorf("-retention %q = %v, want %v", tc.v, c.Retention, tc.want)
		}
	}
}
