package sessions

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// execTimeout bounds a short exec (signal, remove, list): each is a few
// builtins and a process or two.
const execTimeout = 15 * time.Second

// execReport runs a short script (detach_scripts.go) over an exec channel of
// c, with nonce as its first argument, and returns the words of its report
// lines (those that start with the nonce), in order. ctx and execTimeout bound
// it; a channel that ends without an exit status is an error.
func execReport(ctx context.Context, c *conn, script string, args ...string) ([][]string, error) {
	return execReportWithin(ctx, c, execTimeout, script, args...)
}

// execReportWithin is execReport with another time limit, for a script whose
// time grows with its input (hashing a large file).
func execReportWithin(ctx context.Context, c *conn, timeout time.Duration, script string, args ...string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sess, err := c.openChannel(ctx)
	if err != nil {
		return nil, fmt.Errorf("open exec channel on %s: %w", c.key, err)
	}
	defer sess.Close()
	nonce := newNonce()
	var stdout, stderr limitedBuffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Start(execCommand(script, append([]string{nonce}, args...)...)); err != nil {
		return nil, fmt.Errorf("exec on %s: %w", c.key, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Close()
		return nil, fmt.Errorf("exec on %s: %w", c.key, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("exec on %s: %w (stderr %q)", c.key, err, strings.TrimSpace(stderr.String()))
	}
	return reportLines(nonce, stdout.String()), nil
}

// reportLines returns, for each line that starts with the nonce, its word
// after the nonce and the rest of the line (a path may hold spaces).
func reportLines(nonce, out string) [][]string {
	var lines [][]string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, nonce+" "); ok && rest != "" {
			lines = append(lines, strings.SplitN(rest, " ", 2))
		}
	}
	return lines
}

// limitedBuffer keeps the first 64 KiB written to it: enough for any report,
// and a chatty rc file cannot grow it without bound.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
