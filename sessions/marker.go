package sessions

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
)

// The markers a shell prints around a job. Each is framed by RS (0x1e) bytes
// and carries a per-job random nonce. The typed command text only ever holds
// the four characters `\036`, which printf turns into the RS byte, so the echo
// of what we type (if echo is on after all) never equals a printed marker, and
// output that imitates a marker without the nonce is just output.
//
//	ready:  RS "R_" nonce "_" pid RS     the init script has run; pid is $$
//	begin:  RS "B_" nonce RS             the job's output starts right after
//	end:    RS "E_" nonce "_" code "_" pwd RS
//	prompt: RS "P_" nonce RS             the shell showed its prompt (PS1)
//
// The end marker follows the output directly, with no newline added before
// it, so output without a final newline is kept exactly. The prompt marker is
// the job's PS1: seen before the end marker, it means the shell abandoned the
// rest of the command line (an interrupt, or a syntax error in dash's eval).
const rs = 0x1e

// maxEndMarker bounds the end marker's body (exit code and $PWD; PATH_MAX is
// 4096), so that a broken stream cannot grow it without end.
const maxEndMarker = 16 << 10

// newNonce returns 16 random hex digits.
func newNonce() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("sessions: crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

func readyPrefix(nonce string) []byte  { return []byte("\x1eR_" + nonce + "_") }
func beginMarker(nonce string) []byte  { return []byte("\x1eB_" + nonce + "\x1e") }
func endPrefix(nonce string) []byte    { return []byte("\x1eE_" + nonce + "_") }
func promptMarker(nonce string) []byte { return []byte("\x1eP_" + nonce + "\x1e") }

// markerEnd is what a job's framing reported when it ended.
type markerEnd struct {
	// Aborted: the prompt came before the end marker; there is no exit code.
	Aborted  bool
	ExitCode int
	HasCode  bool
	Cwd      string
}

type scanPhase uint8

const (
	phaseBegin scanPhase = iota // discarding until the begin marker
	phaseBody                   // passing output through until end or prompt
	phaseEnd                    // reading the end marker's body
	phaseDone
)

// markerScanner finds one job's markers in the raw shell stream, which may be
// split anywhere. It passes the output between begin and end through as soon
// as it can, holding back only a tail that could be the start of a marker.
type markerScanner struct {
	nonce              string
	begin, end, prompt []byte
	phase              scanPhase
	held               []byte // a possible marker start, or the end marker body
	result             markerEnd
	err                error
}

func newMarkerScanner(nonce string) *markerScanner {
	return &markerScanner{nonce: nonce, begin: beginMarker(nonce), end: endPrefix(nonce), prompt: promptMarker(nonce)}
}

// Feed scans p and returns the job output it releases, and whether the job's
// framing ended. Bytes after the end are dropped (the next job's scanner waits
// for its own begin marker).
func (m *markerScanner) Feed(p []byte) (out []byte, done bool) {
	buf := p
	if len(m.held) > 0 {
		buf = append(m.held, p...)
		m.held = nil
	}
	for len(buf) > 0 {
		switch m.phase {
		case phaseBegin:
			i, _ := findMarker(buf, m.begin, m.prompt)
			if i < 0 {
				m.hold(buf, m.begin, m.prompt)
				return out, false
			}
			if bytes.HasPrefix(buf[i:], m.prompt) {
				m.result.Aborted = true
				m.phase = phaseDone
				return out, true
			}
			buf = buf[i+len(m.begin):]
			m.phase = phaseBody
		case phaseBody:
			i, n := findMarker(buf, m.end, m.prompt)
			if i < 0 {
				keep := m.hold(buf, m.end, m.prompt)
				return append(out, buf[:len(buf)-keep]...), false
			}
			out = append(out, buf[:i]...)
			if bytes.HasPrefix(buf[i:], m.prompt) {
				m.result.Aborted = true
				m.phase = phaseDone
				return out, true
			}
			buf = buf[i+n:]
			m.phase = phaseEnd
		case phaseEnd:
			j := bytes.IndexByte(buf, rs)
			if j < 0 {
				if len(buf) > maxEndMarker {
					m.err = fmt.Errorf("end marker longer than %d bytes", maxEndMarker)
					m.phase = phaseDone
					return out, true
				}
				m.held = append([]byte(nil), buf...)
				return out, false
			}
			m.result, m.err = parseEnd(buf[:j])
			m.phase = phaseDone
			return out, true
		case phaseDone:
			return out, true
		}
	}
	return out, m.phase == phaseDone
}

// hold keeps the longest tail of buf that could begin one of the markers, and
// returns its length.
func (m *markerScanner) hold(buf []byte, markers ...[]byte) int {
	keep := 0
	for _, mk := range markers {
		if k := partialSuffix(buf, mk); k > keep {
			keep = k
		}
	}
	if keep > 0 {
		m.held = append([]byte(nil), buf[len(buf)-keep:]...)
	}
	return keep
}

// findMarker returns the index and length of the first of the markers in buf,
// or -1.
func findMarker(buf []byte, markers ...[]byte) (int, int) {
	best, n := -1, 0
	for _, mk := range markers {
		if i := bytes.Index(buf, mk); i >= 0 && (best < 0 || i < best) {
			best, n = i, len(mk)
		}
	}
	return best, n
}

// partialSuffix returns the length of the longest proper prefix of pattern
// that buf ends with: the bytes to hold back because the next read may
// complete the pattern (a marker, our sudo prompt, a secret to mask).
func partialSuffix(buf, pattern []byte) int {
	for k := min(len(pattern)-1, len(buf)); k > 0; k-- {
		if bytes.HasSuffix(buf, pattern[:k]) {
			return k
		}
	}
	return 0
}

// parseEnd parses "code_pwd" from the end marker.
func parseEnd(body []byte) (markerEnd, error) {
	code, pwd, ok := bytes.Cut(body, []byte("_"))
	if !ok {
		return markerEnd{}, fmt.Errorf("end marker %q: no exit code", body)
	}
	var r markerEnd
	// The PTY turned any newline in $PWD into CRLF.
	r.Cwd = string(bytes.ReplaceAll(pwd, []byte("\r\n"), []byte("\n")))
	n, err := strconv.Atoi(string(code))
	if err != nil {
		return r, fmt.Errorf("end marker: exit code %q: %w", code, err)
	}
	r.ExitCode, r.HasCode = n, true
	return r, nil
}
