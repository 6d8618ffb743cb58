package sessions

import (
	"context"
	"slices"
	"testing"

	"github.com/sshjobs/sshjobs/internal/devicetest"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// CheckEnable, before a job: a device whose enable asks for a secret needs
// one; the right one gets in, a wrong one is refused; nothing is typed at
// the password prompt when no secret is given, and the job's session is not
// used. A device whose enable takes no secret, and a session already
// privileged, need nothing; a POSIX host is not a device.
func TestCheckEnable(t *testing.T) {
	ctx := context.Background()
	ds := startIOS(t, sshtest.KindInProcess, &devicetest.IOS{EnableSecret: testEnableSecret})
	p := newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}})
	h := mustResolve(t, p, ds.srv)
	for _, c := range []struct {
		secret string
		want   EnableCheck
	}{{"", EnableNeedsSecret}, {"wrong-secret", EnableRefused}, {testEnableSecret, EnableOK}} {
		if got, err := p.CheckEnable(ctx, h, jobs.DefaultSession, c.secret); got != c.want || err != nil {
			t.Errorf("secret %q: %v %v, want %v", c.secret, got, err, c.want)
		}
	}
	if got := ds.log.Lines(); !slices.Equal(got, []string{"terminal length 0", "enable", "terminal length 0", "enable", "terminal length 0", "enable"}) {
		t.Errorf("lines the device ran: %q", got)
	}
	// The job's session, once in enable mode, is not checked again.
	p = newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}}, "OVRD_SSHTEST_INPROCESS_ENABLE_PASS", testEnableSecret)
	wantDevJob(t, p, ds.srv, "show clock", jobs.StateSucceeded)
	before := len(ds.log.Lines())
	if got, err := p.CheckEnable(ctx, h, jobs.DefaultSession, ""); got != EnableOK || err != nil {
		t.Errorf("a privileged session: %v %v", got, err)
	}
	if got, err := p.CheckEnable(ctx, h, "other", ""); got != EnableNeedsSecret || err != nil {
		t.Errorf("another session: %v %v", got, err)
	}
	if n := len(ds.log.Lines()) - before; n != 2 {
		t.Errorf("%d lines typed, want 2 (one login for the other session): %q", n, ds.log.Lines()[before:])
	}

	open := startIOS(t, sshtest.KindInProcess, &devicetest.IOS{})
	p = newDevicePool(t, open.srv, PoolConfig{Devices: []string{"sshtest-*"}})
	h = mustResolve(t, p, open.srv)
	for range 2 {
		if got, err := p.CheckEnable(ctx, h, jobs.DefaultSession, ""); got != EnableOK || err != nil {
			t.Errorf("enable without a secret: %v %v", got, err)
		}
	}
	if got := open.log.Lines(); !slices.Equal(got, []string{"terminal length 0", "enable"}) {
		t.Errorf("lines the device ran (once: remembered): %q", got)
	}

	shell := sshtest.StartInProcess(t, sshtest.Options{})
	p = newDevicePool(t, shell, PoolConfig{})
	if got, err := p.CheckEnable(ctx, mustResolve(t, p, shell), jobs.DefaultSession, ""); got != EnableUnknown || err != nil {
		t.Errorf("a POSIX host: %v %v", got, err)
	}
}
