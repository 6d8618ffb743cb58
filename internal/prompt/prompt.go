// Package prompt recognises a terminal's last line as a request for input:
// a password, a confirmation, a pager, "press a key", or a question.
//
// The caller decides when to ask: only once output has gone quiet with that
// line unfinished (no newline after it) is it worth a look, since a line
// followed by more output was not waiting for anyone. Detect itself only
// judges the text, and errs towards "not a prompt" for text that is more
// likely data (key=value, JSON, URLs, log lines).
package prompt

import (
	"strings"

	"github.com/sshjobs/sshjobs/jobs"
)

// MaxLine is the longest line looked at. Prompts are short; a long unfinished
// line is output that stalled (a progress line, a dump without newline).
const MaxLine = 240

// Detect reports whether line, the last (unfinished) line of a terminal, asks
// for input, and of which kind. Only the text after the last newline counts.
// The returned Text is that line without surrounding white space.
func Detect(line string) (jobs.Prompt, bool) {
	if i := strings.LastIndexAny(line, "\r\n"); i >= 0 {
		line = line[i+1:]
	}
	text := strings.TrimSpace(line)
	if text == "" || len(text) > MaxLine || !printable(text) {
		return jobs.Prompt{}, false
	}
	lower := strings.ToLower(text)
	kind, ok := classify(text, lower)
	if !ok {
		return jobs.Prompt{}, false
	}
	return jobs.Prompt{Text: text, Kind: kind}, true
}

// classify applies the rules from the most specific to the most general: a
// pager's status line or a "[Y/n]" says more than its final character.
func classify(text, lower string) (jobs.PromptKind, bool) {
	switch {
	case isPager(text, lower):
		return jobs.PromptPager, true
	case isPressKey(lower):
		return jobs.PromptPressKey, true
	case looksLikeData(text, lower):
		return "", false
	case isConfirm(lower):
		return jobs.PromptConfirm, true
	case isSecret(lower):
		return jobs.PromptPassword, true
	case isQuestion(text, lower):
		return jobs.PromptQuestion, true
	}
	return "", false
}

// printable rejects lines with control characters: a cleaned terminal line
// has none, so one there means binary output, not a prompt.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}
