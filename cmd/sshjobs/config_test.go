package main

import (
	"flag"
	"testing"
	"time"
)

// Any zero duration for -retention keeps every job, as the usage says; not
// only the literal "0".
func TestRetentionZeroKeepsEverything(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 30 * 24 * time.Hour},
		{"0", -1},
		{"0s", -1},
		{"0h", -1},
		{"0m0s", -1},
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
