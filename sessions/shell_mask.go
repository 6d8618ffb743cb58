package sessions

import "bytes"

// maskText replaces a secret found in a job's output.
const maskText = "********"

// minMaskedSecret is the shortest secret that is masked: masking "y" or "1"
// would mangle the output of a job that was merely answered with secret set.
const minMaskedSecret = 4

// masker removes a job's secrets (its secret inputs, the sudo password) from
// its clean output before it is stored, in case the remote echoes them: a
// program that turns echo on, or a secret typed where no password was asked.
// It holds back a tail that could be the start of a secret, so that one split
// across two writes is still found.
type masker struct {
	secrets [][]byte
	held    []byte
}

// add records a secret: each of its lines, without line endings.
func (m *masker) add(secret []byte) {
	for _, line := range bytes.Split(secret, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) < minMaskedSecret {
			continue
		}
		dup := false
		for _, s := range m.secrets {
			dup = dup || bytes.Equal(s, line)
		}
		if !dup {
			m.secrets = append(m.secrets, append([]byte(nil), line...))
		}
	}
}

// Write returns p masked, less a held tail that could begin a secret.
func (m *masker) Write(p []byte) []byte {
	if len(m.secrets) == 0 {
		return p
	}
	buf := m.mask(append(m.held, p...))
	keep := 0
	for _, s := range m.secrets {
		keep = max(keep, partialSuffix(buf, s))
	}
	m.held = append([]byte(nil), buf[len(buf)-keep:]...)
	return buf[:len(buf)-keep]
}

// Flush returns the held tail: the output ended, or must be shown now.
func (m *masker) Flush() []byte {
	out := m.held
	m.held = nil
	return out
}

// String masks s, e.g. a prompt's text.
func (m *masker) String(s string) string {
	if len(m.secrets) == 0 {
		return s
	}
	return string(m.mask([]byte(s)))
}

func (m *masker) mask(p []byte) []byte {
	for _, s := range m.secrets {
		if bytes.Contains(p, s) {
			p = bytes.ReplaceAll(p, s, []byte(maskText))
		}
	}
	return p
}
