package sshdial

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// startProxyCommand runs h.ProxyCommand through `sh -c` (as ssh runs it
// through the shell) and returns a net.Conn over its stdin and stdout. Its
// stderr goes to the logger, line by line. Closing the conn ends the command
// (its whole process group, so `nc` under a wrapper script goes too). It
// runs in env, which holds none of sshjobs' secrets (see childEnv).
func startProxyCommand(h *sshconfig.Host, env []string, logger *slog.Logger) (net.Conn, error) {
	// os.Pipe, not cmd.StdoutPipe: *os.File pipes support deadlines, which
	// bound the handshake like a socket's.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command("sh", "-c", "exec "+h.ProxyCommand)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = inR, outW
	errR, err := cmd.StderrPipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, err
	}
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("ProxyCommand %q: %w", h.ProxyCommand, err)
	}
	// The child holds its own copies of these ends.
	inR.Close()
	outW.Close()

	c := &pipeConn{cmd: cmd, r: outR, w: inW, addr: pipeAddr(h.Addr()), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			logger.Warn("ssh ProxyCommand stderr", "host", h.Key(), "line", sc.Text())
		}
		// Wait only after stderr is drained (os/exec's rule for StderrPipe).
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// pipeConn is a net.Conn over a ProxyCommand's stdout (read) and stdin (write).
type pipeConn struct {
	cmd     *exec.Cmd
	r, w    *os.File
	addr    pipeAddr
	done    chan struct{} // closed when the command has exited
	waitErr error
	once    sync.Once
}

func (c *pipeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// Close closes our ends of the pipes (most commands exit on EOF), then
// kills the command if it has not exited within a moment.
func (c *pipeConn) Close() error {
	c.once.Do(func() {
		c.w.Close()
		c.r.Close()
		select {
		case <-c.done:
		case <-time.After(500 * time.Millisecond):
			killProcessGroup(c.cmd)
			<-c.done
		}
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr  { return pipeAddr("proxycommand") }
func (c *pipeConn) RemoteAddr() net.Addr { return c.addr }

func (c *pipeConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetReadDeadline(t), c.w.SetWriteDeadline(t))
}
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// pipeAddr names the far end of a ProxyCommand: the host:port it reaches.
type pipeAddr string

func (a pipeAddr) Network() string { return "proxycommand" }
func (a pipeAddr) String() string  { return string(a) }
