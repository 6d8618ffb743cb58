package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/internal/term"
)

// The terminal a device session gets. Devices cap the width (IOS at 512);
// paging is turned off by command, and any pager left is answered.
const (
	deviceCols = 511
	deviceRows = 24
)

const (
	// deviceStartTimeout bounds a device session's start: the login
	// banner, up to its first prompt.
	deviceStartTimeout = 20 * time.Second
	// deviceNudge is how long a starting device may show no prompt before
	// it is sent an empty line (some wait for a key after the banner).
	deviceNudge = 3 * time.Second
	// promptSettle is how long the learned prompt must stay the last thing
	// shown before the command counts as done: a prompt-like line that more
	// output follows was data.
	promptSettle = 150 * time.Millisecond
	// relearnSettle is the same for a prompt of the device's vendor with
	// another host part (the command renamed the device).
	relearnSettle = time.Second
	// shellSettle is how long a POSIX shell's prompt must stay the last
	// thing a starting device session shows before it fails: the host has
	// a shell.
	shellSettle = time.Second
	// deviceStepTimeout bounds the steps sshjobs takes itself (the prompt
	// check before a job, enable, paging off): each is one short exchange.
	deviceStepTimeout = 15 * time.Second
	// cancelQuit is how long a cancelled command may run on after ^C before
	// q is sent (a pager or a monitor that wants it); cancelClose, after
	// that, before the session is closed to stop it.
	cancelQuit  = 2 * time.Second
	cancelClose = 5 * time.Second
)

// device is a session on a network device's CLI (a router's or a switch's),
// which has no POSIX shell, so no marker protocol: a command is typed as a
// person would type it, and it is done when the device shows its prompt
// again. The prompt is learned when the session starts (device_prompt.go).
// It reuses a shell's channel plumbing (read and write loops, close), not
// its protocol.
type device struct {
	io     *shell // the PTY channel: readLoop, writeLoop, close
	name   string
	logger *slog.Logger
	cfg    deviceConfig

	vendor deviceVendor // the prompt's, learned at the start; never changes
	prompt devicePrompt
	// Owned by the job running on the session (one at a time).
	mode  string // the prompt's mode after the last exchange: ">", "#", "(config)#", "/interface>"
	shown string // the whole prompt line last shown
}

// deviceConfig is what a device session takes from the pool.
type deviceConfig struct {
	// PrintAsIs leaves RouterOS print commands as typed (no
	// without-paging added).
	PrintAsIs bool
}

// notPOSIXError is what a starting shell returns when what answered its
// init script is a network device's CLI (deviceDetector).
type notPOSIXError struct {
	prompt devicePrompt
	after  time.Duration
}

func (e *notPOSIXError) Error() string {
	return fmt.Sprintf("no POSIX shell: a %s device prompt answered (after %v)", e.prompt.vendor, e.after.Round(time.Millisecond))
}

// startDevice opens a session channel with a PTY, starts the device's CLI
// and learns its prompt; then turns paging off where the CLI allows it.
func startDevice(ctx context.Context, open openSession, spawn spawner, name string, logger *slog.Logger, cfg deviceConfig) (*device, error) {
	sess, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	d := &device{name: name, logger: logger, cfg: cfg, io: &shell{
		name: name, open: open, sess: sess, logger: logger,
		chunks: make(chan []byte, 16), eof: make(chan struct{}), writes: make(chan writeReq, 16),
		waited: make(chan struct{}), closed: make(chan struct{}), startedAt: time.Now(),
	}}
	if err := d.start(ctx, spawn); err != nil {
		d.io.close()
		return nil, err
	}
	return d, nil
}

func (d *device) start(ctx context.Context, spawn spawner) error {
	s := d.io
	// Devices echo what they are sent themselves, whatever the modes say.
	if err := s.startPTY(spawn, "vt100", deviceRows, deviceCols); err != nil {
		return err
	}
	s.idle.Store(false)
	if err := d.learn(ctx); err != nil {
		return err
	}
	if err := d.pagingOff(ctx); err != nil {
		return err
	}
	s.idle.Store(true)
	return nil
}

// learn waits for the device's first prompt: a last line the learner takes,
// with nothing after it for promptSettle.
func (d *device) learn(ctx context.Context) error {
	timer := time.NewTimer(deviceStartTimeout)
	defer timer.Stop()
	nudge := time.NewTicker(deviceNudge)
	defer nudge.Stop()
	settle, shell := stoppedTimer(), stoppedTimer()
	defer shell.Stop()
	var cl term.Cleaner
	var last lastBytes
	for {
		select {
		case p, ok := <-d.io.chunks:
			if !ok {
				return fmt.Errorf("the device ended the session before it showed a prompt (%s)%s", d.io.exitDetail(), last.suffix())
			}
			last.add(p)
			cl.Write(p)
			settle.Stop()
			shell.Stop()
			if _, ok := learnPrompt(string(cl.Pending())); ok {
				settle.Reset(promptSettle)
			} else if shellPromptLine().MatchString(string(cl.Pending())) {
				shell.Reset(shellSettle)
			}
		case <-shell.C:
			return fmt.Errorf("%w: its prompt %q is a POSIX shell's", errNotDevice, strings.TrimSpace(string(cl.Pending())))
		case <-settle.C:
			line := string(cl.Pending())
			p, ok := learnPrompt(line)
			if !ok {
				continue
			}
			d.prompt, d.shown, d.vendor = p, line, p.vendor
			d.mode, _ = p.match(line)
			d.logger.Info("device session: prompt learned", "session", d.name, "vendor", p.vendor, "prompt", strings.TrimSpace(line))
			return nil
		case <-nudge.C:
			d.io.writeAsync([]byte("\r"), nil)
		case <-timer.C:
			return fmt.Errorf("the device showed no prompt after %v%s (if the host is no network device: call ssh_connect with device false)", deviceStartTimeout, last.suffix())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pagingOff turns the device's pager off where a command does that for the
// session. RouterOS has none: its print commands get without-paging
// (printCommand). A pager that still shows is answered (exchange).
func (d *device) pagingOff(ctx context.Context) error {
	var tries []string
	switch d.prompt.vendor {
	case vendorIOS:
		// ASA knows only the second; IOS, NX-OS, EOS the first.
		tries = []string{"terminal length 0", "terminal pager 0"}
	case vendorEdgeSwitch:
		tries = []string{"terminal length 0"}
	case vendorJunos:
		tries = []string{"set cli screen-length 0"}
	}
	for _, c := range tries {
		x := d.exchange(ctx, c, exchangeOpts{timeout: deviceStepTimeout})
		if x.err != nil {
			return fmt.Errorf("turning paging off (%s): %w", c, x.err)
		}
		if x.errLine == "" {
			return nil
		}
	}
	return nil
}

// errNotDevice: a host named a network device (ssh_connect's device, the
// Devices patterns) has a POSIX shell.
var errNotDevice = errors.New("the host was named a network device but has a POSIX shell: call ssh_connect with device false to undo that")

// errDeviceTimeout: a step of sshjobs' own got no prompt back in time.
var errDeviceTimeout = errors.New("the device did not show its prompt again")

func (d *device) alive() bool             { return d.io.alive() }
func (d *device) close()                  { d.io.close() }
func (d *device) closeWith(reason string) { d.io.closeWith(reason) }
func (d *device) where() string           { return strings.TrimSpace(d.shown) }
