// Package keys turns a string of text and named keys ("ls<enter>",
// ":wq<enter>", "<ctrl-c>") into the bytes a terminal sends for them, so
// that an agent can drive full-screen programs (less, vi, top, menus)
// through ssh_input. The sequences are xterm's in normal cursor mode, which
// is what programs expect from TERM=xterm and most others.
package keys

import (
	"fmt"
	"sort"
	"strings"
)

// named maps a token (without its angle brackets) to its bytes.
var named = map[string]string{
	"enter": "\r", "tab": "\t", "esc": "\x1b", "bs": "\x7f", "space": " ",
	"up": "\x1b[A", "down": "\x1b[B", "right": "\x1b[C", "left": "\x1b[D",
	"home": "\x1b[H", "end": "\x1b[F", "pgup": "\x1b[5~", "pgdn": "\x1b[6~", "del": "\x1b[3~",
	"f1": "\x1bOP", "f2": "\x1bOQ", "f3": "\x1bOR", "f4": "\x1bOS",
	"f5": "\x1b[15~", "f6": "\x1b[17~", "f7": "\x1b[18~", "f8": "\x1b[19~",
	"f9": "\x1b[20~", "f10": "\x1b[21~", "f11": "\x1b[23~", "f12": "\x1b[24~",
}

func init() {
	for c := 'a'; c <= 'z'; c++ {
		named["ctrl-"+string(c)] = string(rune(c - 'a' + 1))
	}
}

// Names lists the valid tokens, for an error a caller can act on.
func Names() string {
	var ns []string
	for n := range named {
		if !strings.HasPrefix(n, "ctrl-") && !(strings.HasPrefix(n, "f") && len(n) > 1 && n[1] >= '0' && n[1] <= '9') {
			ns = append(ns, "<"+n+">")
		}
	}
	sort.Strings(ns)
	return strings.Join(ns, " ") + " <f1>...<f12> <ctrl-a>...<ctrl-z>, and << for a literal <"
}

// Parse returns the bytes for s: its text as it is, each <name> as its key,
// and << as one <. Names are case-insensitive. An unknown or unclosed token is
// an error that lists the valid ones.
func Parse(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); {
		c := s[i]
		if c != '<' {
			out = append(out, c)
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "<<") {
			out = append(out, '<')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			return nil, fmt.Errorf("keys: %q at byte %d has no closing '>' (write << for a literal <); valid keys: %s", clip(s[i:]), i, Names())
		}
		name := strings.ToLower(s[i+1 : i+end])
		seq, ok := named[name]
		if !ok {
			return nil, fmt.Errorf("keys: unknown key <%s>; valid keys: %s", clip(name), Names())
		}
		out = append(out, seq...)
		i += end + 1
	}
	return out, nil
}

// clip keeps an error short whatever was sent.
func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}
