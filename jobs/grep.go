package jobs

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
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
)

// Grep returns up to max lines of a job's stored output that match the
// regular expression pattern (RE2 syntax), and whether more matched. Line
// numbers count the lines as stored: after a gap left by the output cap
// they count on from the gap.
func (e *Engine) Grep(ctx context.Context, id, pattern string, max int) ([]Match, bool, error) {
	if err := validID(id); err != nil {
		return nil, false, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, false, fmt.Errorf("%w: grep pattern: %v", ErrBadInput, err)
	}
	if max <= 0 {
		max = 100
	}
	var (
		matches []Match
		line    []byte // the current line so far
		lineOff int64
		lineNo  = 1
		off     int64
	)
	emit := func() bool {
		if re.Match(line) {
			if len(matches) == max {
				return false
			}
			matches = append(matches, Match{Line: lineNo, Offset: lineOff, Text: string(line)})
		}
		return true
	}
	for {
		out, err := e.store.ReadOutput(ctx, id, off, grepReadSize)
		if err != nil {
			return nil, false, err
		}
		if out.Skipped > 0 && len(line) > 0 {
			if !emit() {
				return matches, true, nil
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
				return matches, true, nil
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
	if len(line) > 0 && !emit() {
		return matches, true, nil
	}
	return matches, false, nil
}

func appendBounded(line, p []byte) []byte {
	room := maxGrepLine - len(line)
	if room <= 0 {
		return line
	}
	return append(line, p[:min(len(p), room)]...)
}
