package jobs

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"time"
)

// Match is one line of output that matched a grep.
type Match struct {
	Line   int    `json:"line"`   // 1-based line number in the stored output
	Offset int64  `json:"offset"` // byte offset of the line's start
	Text   string `json:"text"`   // the line without its newline
}

const (
	grepReadSize = 1 << 20
	// maxGrepLine bounds a line held for matching; a longer line is matched on
	// its first maxGrepLine bytes.
	maxGrepLine = 64 << 10
	// GrepTimeout bounds one Grep: RE2 is linear in the output, but a
	// pattern like (.{0,100}){10}Q costs thousands of steps per byte, and a
	// call must not outlive its caller's patience.
	GrepTimeout = 10 * time.Second
)

// GrepResult is what Grep found.
type GrepResult struct {
	Matches []Match
	More    bool // more lines matched than asked for
	// Incomplete says the search stopped before the end of the output (the
	// time limit or the caller's context); SearchedTo is the offset it reached.
	Incomplete bool
	SearchedTo int64
}

// Grep returns up to max lines of a job's stored output that match the
// regular expression pattern (RE2 syntax), and whether more matched. Line
// numbers count the lines as stored: after a gap left by the output cap
// they count on from the gap. It stops early, with what it found so far and
// Incomplete set, after GrepTimeout or when ctx ends.
func (e *Engine) Grep(ctx context.Context, id, pattern string, max int) (GrepResult, error) {
	var res GrepResult
	if err := validID(id); err != nil {
		return res, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return res, fmt.Errorf("%w: grep pattern: %v", ErrBadInput, err)
	}
	if max <= 0 {
		max = 100
	}
	deadline := time.Now().Add(GrepTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var (
		line    []byte // the current line so far
		lineOff int64
		lineNo  = 1
		off     int64
	)
	// emit matches the line; false ends the search (enough matches, or no
	// time left: then the line was not searched).
	emit := func() bool {
		if ctx.Err() != nil || time.Now().After(deadline) {
			res.Incomplete, res.SearchedTo = true, lineOff
			return false
		}
		if re.Match(line) {
			if len(res.Matches) == max {
				res.More = true
				return false
			}
			res.Matches = append(res.Matches, Match{Line: lineNo, Offset: lineOff, Text: string(line)})
		}
		return true
	}
	for {
		out, err := e.store.ReadOutput(ctx, id, off, grepReadSize)
		if err != nil {
			if ctx.Err() != nil {
				res.Incomplete, res.SearchedTo = true, off
				return res, nil
			}
			return res, err
		}
		if out.Skipped > 0 && len(line) > 0 {
			if !emit() {
				return res, nil
			}
			line, lineNo = line[:0], lineNo+1
		}
		if len(line) == 0 {
			lineOff = out.Offset
		}
		data := out.Data
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				line = appendBounded(line, data)
				break
			}
			line = appendBounded(line, data[:i])
			if !emit() {
				return res, nil
			}
			line, lineNo = line[:0], lineNo+1
			lineOff = out.Offset + int64(len(out.Data)-len(data)) + int64(i) + 1
			data = data[i+1:]
		}
		off = out.Offset + int64(len(out.Data))
		if len(out.Data) == 0 || off >= out.Total {
			break
		}
	}
	if len(line) > 0 {
		emit()
	}
	if !res.Incomplete {
		res.SearchedTo = off
	}
	return res, nil
}

func appendBounded(line, p []byte) []byte {
	room := maxGrepLine - len(line)
	if room <= 0 {
		return line
	}
	return append(line, p[:min(len(p), room)]...)
}
