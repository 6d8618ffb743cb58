package prompt

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// The rules' expressions compile on first use, not at start-up: a CLI
// command that detects no prompt would pay a millisecond for them.
var (
	// less's status line with -M or -m, and its end of file.
	lessStatus = lazyRegexp(`^lines \d+-\d+(/\d+)?( \d+%)?( \(end\))?$`)
	// "press any key", "Press Enter to continue", "press RETURN", "hit <enter>".
	pressKey = lazyRegexp(`\b(press|hit|strike|type)\s+(any key|a key|<?enter>?|<?return>?|\[enter\]|\[return\]|the (enter|return) key)\b`)
	// "[Y/n]", "[y/N]", "(yes/no)", "(yes/no/[fingerprint])", "([y]/n)", "[y/n/q]".
	yesNo = lazyRegexp(`[\[(]\s*\[?y(es)?\]?\s*/\s*\[?n(o)?\]?[^\])]{0,24}[\])]`)
	// Words that make a question a confirmation.
	confirmWords = lazyRegexp(`\b(continue|proceed|are you sure|overwrite|confirm|really)\b`)
	// Words of a secret's prompt.
	secretWords = lazyRegexp(`\b(password|passphrase|passcode|pin|pin code|verification code|one-time code|otp|token)\b`)
	// A log line's start: an ISO date, a time, a syslog date, a bracketed
	// number or date.
	logStart = lazyRegexp(`^(\[?\d{4}[-/]\d{2}[-/]\d{2}|\[?\d{1,2}:\d{2}:\d{2}|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec) [ \d]\d \d{2}:|\[\s*\d+(\.\d+)?\])`)
	// A log level as a word of its own, in capitals, as loggers print it.
	logLevel = lazyRegexp(`(^|[\s\[(|])(INFO|WARN|WARNING|ERROR|ERR|DEBUG|TRACE|FATAL|NOTICE|CRIT|CRITICAL)([\s\]):|]|$)`)
)

// lazyRegexp compiles pattern on its first use.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}

// isPager: less's ":" and "(END)", more's "--More--", less's status line, man's
// help hint.
func isPager(text, lower string) bool {
	switch {
	case text == ":":
		return true
	case strings.HasSuffix(lower, "(end)"):
		return true
	case strings.HasPrefix(lower, "--more--"):
		return true
	case lessStatus().MatchString(lower):
		return true
	case strings.Contains(lower, "(press h for help or q to quit)"):
		return true
	}
	return false
}

func isPressKey(lower string) bool { return pressKey().MatchString(lower) }

// looksLikeData rejects lines that only look like prompts: a log line that
// happens to end in ':' or '?', a JSON key, the end of a URL or a key=value.
func looksLikeData(text, lower string) bool {
	if logStart().MatchString(lower) || logLevel().MatchString(text) {
		return true
	}
	if strings.Contains(text, `":`) || strings.HasPrefix(text, "{") {
		return true
	}
	last := text
	if i := strings.LastIndexFunc(text, unicode.IsSpace); i >= 0 {
		last = text[i+1:]
	}
	// A URL as the last word, unless quoted as git quotes the one it names
	// ("Password for 'https://host':").
	if strings.Contains(last, "://") && !strings.ContainsAny(last, `'"`) {
		return true
	}
	// key=value as the last word: password=secret, a query string.
	if k, _, ok := strings.Cut(last, "="); ok && k != "" && !strings.ContainsAny(k, `'"`) {
		return true
	}
	return false
}

// isConfirm: a yes/no choice near the end, or a question about going on.
func isConfirm(lower string) bool {
	if loc := yesNo().FindStringIndex(lower); loc != nil {
		rest := strings.TrimRight(lower[loc[1]:], " ?:)]>")
		return len(rest) <= 2
	}
	return strings.HasSuffix(lower, "?") && confirmWords().MatchString(lower)
}

// isSecret: a prompt naming a secret, ending in ':' as they all do.
func isSecret(lower string) bool {
	return strings.HasSuffix(lower, ":") && secretWords().MatchString(lower)
}

// isQuestion: prose ending in '?' or ':'.
func isQuestion(text, lower string) bool {
	if !strings.HasSuffix(text, "?") && !strings.HasSuffix(text, ":") {
		return false
	}
	if strings.HasSuffix(text, "::") || strings.HasSuffix(text, "??") && len(strings.Trim(text, "?")) == 0 {
		return false
	}
	letters := 0
	for _, r := range lower {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return letters >= 2
}
