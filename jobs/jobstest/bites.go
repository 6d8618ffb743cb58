package jobstest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ExpectFailures proves that a contract suite bites: for each broken
// implementation (a key of failing), it runs the test helper (a test of the
// calling package that runs the suite against the implementation named by
// env) in a child process, and checks that it fails in each named subtest. A
// child process, because a failing subtest would fail the caller too.
func ExpectFailures(t *testing.T, helper, env string, failing map[string][]string) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	results := map[string]chan result{}
	for broken := range failing {
		// In parallel: the children mostly wait.
		ch := make(chan result, 1)
		results[broken] = ch
		go func() {
			cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1", "-test.v", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), env+"="+broken)
			out, err := cmd.CombinedOutput()
			ch <- result{string(out), err}
		}()
	}
	for broken, names := range failing {
		r := <-results[broken]
		var ee *exec.ExitError
		switch {
		case r.err == nil:
			t.Errorf("%s: the suite passed a broken implementation:\n%s", broken, r.out)
			continue
		case !errors.As(r.err, &ee):
			t.Errorf("%s: run the child test: %v", broken, r.err)
			continue
		}
		for _, name := range names {
			if !strings.Contains(r.out, "--- FAIL: "+helper+"/"+name+" ") {
				t.Errorf("%s: the suite failed, but not in %s:\n%s", broken, name, r.out)
			}
		}
	}
}
