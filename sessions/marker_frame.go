package sessions

import (
	"fmt"
	"strings"
)

// How a command is typed into the shell.
//
// The command is never typed as it is. Typed as is, a heredoc, a trailing
// backslash or an unclosed quote would swallow the framing after it; a command
// that reads stdin would read the framing; a tab would trigger completion and a
// control byte would be a terminal key (^C, ^D, ^U). Instead the command
// becomes a shell string, eval'd in the current shell (so cd and export carry
// over), on one line with its framing:
//
//	PS1=<RS>P_NONCE<RS>; printf '\036B_%s\036' NONCE; eval 'CMD'; __sj_rc=$?; printf '\036E_%s_%d_%s\036\n' NONCE "$__sj_rc" "$PWD"
//
// The shell reads that whole line before running any of it, so nothing typed
// is left for the command's stdin, and any echo of it comes before the begin
// marker. Only printable ASCII is ever typed: a quote becomes \' between
// quoted runs, and any other byte (newline, tab, control, non-ASCII) is
// spliced in from a shell variable __sj_XX holding that byte, defined once
// per shell by printf. A long command is built up in __sj_c over several
// short lines (line editors and the terminal's canonical mode limit a line's
// length), then eval'd. A final newline is added if missing (see
// frameCommand).
const (
	// maxTypedLine bounds each typed line; busybox ash's line editor holds
	// 1024 bytes, the canonical-mode tty 4095.
	maxTypedLine = 512
	// rcVar and cmdVar are the shell variables the framing uses.
	rcVar   = "__sj_rc"
	cmdVar  = "__sj_c"
	lineVar = "__sj_l"
)

// byteVar names the shell variable that holds byte b.
func byteVar(b byte) string { return fmt.Sprintf("__sj_%02x", b) }

// byteVarDef is a line defining byteVar(b). The trailing x survives command
// substitution's stripping of newlines and is removed after.
func byteVarDef(b byte) string {
	v := byteVar(b)
	return fmt.Sprintf(" %s=$(printf '\\%03ox'); %s=${%s%%x}\n", v, b, v, v)
}

// typeable reports whether b is typed as itself inside single quotes.
func typeable(b byte) bool { return b >= 0x20 && b < 0x7f && b != '\'' }

// shellWords splits cmd into pieces of a shell word that evaluates to cmd:
// single-quoted runs of typeable bytes, \' for quotes, and "${__sj_XX}" for
// the rest. needs receives every byte that needs a variable.
func shellWords(cmd []byte, needs func(byte)) []string {
	var pieces []string
	run := 0
	flush := func(i int) {
		for run < i {
			// Keep single pieces short so that lines can be split between them.
			end := min(i, run+maxTypedLine/2)
			pieces = append(pieces, "'"+string(cmd[run:end])+"'")
			run = end
		}
	}
	for i, b := range cmd {
		if typeable(b) {
			continue
		}
		flush(i)
		run = i + 1
		if b == '\'' {
			pieces = append(pieces, `\'`)
			continue
		}
		needs(b)
		pieces = append(pieces, `"${`+byteVar(b)+`}"`)
	}
	flush(len(cmd))
	if len(pieces) == 0 {
		pieces = []string{"''"}
	}
	return pieces
}

// frameCommand returns the text to type to run cmd as the job with nonce.
// defined tracks the byte variables this shell already has; frameCommand adds
// the definitions it types.
func frameCommand(nonce string, cmd []byte, defined *[256]bool) string {
	// A final newline ends the command as the Enter key would: a trailing
	// backslash is a continuation onto nothing (not a literal backslash, as
	// it would be at the very end of eval's string in bash and dash), and a
	// heredoc's terminator line is complete.
	if len(cmd) > 0 && cmd[len(cmd)-1] != '\n' {
		cmd = append(cmd[:len(cmd):len(cmd)], '\n')
	}
	var b strings.Builder
	pieces := shellWords(cmd, func(c byte) {
		if !defined[c] {
			defined[c] = true
			b.WriteString(byteVarDef(c))
		}
	})
	// A leading space keeps each line out of the history where
	// HISTCONTROL=ignorespace (Debian's default) or HIST_IGNORE_SPACE is set.
	var word string
	if n := piecesLen(pieces); n <= maxTypedLine {
		word = strings.Join(pieces, "")
	} else {
		line := " " + cmdVar + "="
		for _, p := range pieces {
			if len(line)+len(p) > maxTypedLine {
				b.WriteString(line + "\n")
				line = " " + cmdVar + `="$` + cmdVar + `"`
			}
			line += p
		}
		b.WriteString(line + "\n")
		word = `"$` + cmdVar + `"`
	}
	fmt.Fprintf(&b, ` PS1="${__sj_1e}P_%s${__sj_1e}"; printf '\036B_%%s\036' %s; eval %s; %s=$?; printf '\036E_%%s_%%d_%%s\036\n' %s "$%s" "$PWD"; %s`+"\n",
		nonce, nonce, word, rcVar, nonce, rcVar, drainLoop(nonce))
	return b.String()
}

// After its end marker, the shell reads and discards lines up to the one
// drainLine(nonce) writes, which the runner sends once it has seen that
// marker. What it discards is terminal input the job left unread: a secret
// typed while nothing read it would otherwise run as the shell's next
// command line. No timeout or tcflush is exact here (input may still be on
// its way); a line sent after the end marker is, as writes arrive in order.
// A partial line before it ends up on the same line, hence the suffix
// match. The loop stops at EOF (^D, a hangup); an interrupt (^C) abandons
// it, and then drainLine runs as the null command.
func drainLoop(nonce string) string {
	return fmt.Sprintf(`while IFS= read -r %s; do case $%s in *%s) break;; esac; done`, lineVar, lineVar, drainWord(nonce))
}

// drainLine is the line that ends the drain of the job with nonce.
func drainLine(nonce string) string { return " : " + drainWord(nonce) + "\n" }

func drainWord(nonce string) string { return "D_" + nonce }

func piecesLen(pieces []string) int {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	return n
}
