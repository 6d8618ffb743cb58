package sessions

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// ConnectInfo is what Pool.Connect reports (ssh_connect's answer).
type ConnectInfo struct {
	sshdial.DialInfo
	Reused bool   // the connection was open already: nothing was dialed
	Remote string // "Linux bash", or why the system is not known
}

// probeNoAnswer is what the probe says of a host whose exec channel did
// not answer as a POSIX shell does.
const probeNoAnswer = "network device or no POSIX shell (uname gave no answer)"

// probeTimeout bounds the one-off command that asks the remote what it is.
const probeTimeout = 10 * time.Second

// probeScript prints one line the probe can find among whatever the remote's
// start-up files print: the system and the login shell's name.
const probeScript = `printf 'SSHJOBS_PROBE %s %s\n' "$(uname -s 2>/dev/null)" "${SHELL##*/}"`

// Connect makes sure there is a live connection to h (dialing it if there is
// none, like the first job would) and reports how it was made and what runs
// on the other side. An open connection is reported as it was made then, with
// the host key "known" (it was checked when it was dialed).
func (p *Pool) Connect(ctx context.Context, h *sshconfig.Host) (ConnectInfo, error) {
	p.mu.Lock()
	old := p.conns[h.Key()]
	reused := old != nil && old.alive()
	p.mu.Unlock()
	c, err := p.acquire(ctx, h)
	if err != nil {
		return ConnectInfo{}, err
	}
	defer p.release(c)
	info := ConnectInfo{DialInfo: c.info, Reused: reused && c == old}
	if info.Reused {
		info.HostKeyStatus = sshdial.HostKeyKnown
	}
	if c.device.Load() || p.deviceByConfig(h) {
		// A device: the exec probe would type a shell command into its CLI.
		info.Remote, _ = c.deviceRemote(ctx)
		return info, nil
	}
	info.Remote = c.probe(ctx)
	if info.Remote == probeNoAnswer {
		if r, ok := c.deviceRemote(ctx); ok {
			info.Remote = r
		}
	}
	return info, nil
}

// probe runs probeScript over an exec channel. A device without a POSIX
// shell (a switch's CLI) answers with something else or nothing.
func (c *conn) probe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	sess, err := c.openChannel(ctx)
	if err != nil {
		return "unknown (no channel: " + err.Error() + ")"
	}
	defer sess.Close()
	done := make(chan struct{})
	var out []byte
	go func() {
		out, _ = sess.Output(probeScript)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		sess.Close()
		<-done
		return "unknown (no answer to uname within " + probeTimeout.String() + ")"
	}
	for line := range bytes.Lines(out) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("SSHJOBS_PROBE ")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 0 {
				break
			}
			return strings.Join(f, " ")
		}
	}
	return probeNoAnswer
}
