package sessions

import (
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/devicetest"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// File operations on a network device without SFTP (the in-process CLI
// refuses the subsystem; behind the real sshd, the ForceCommand runs the
// CLI for it, which answers with text) fail at once with an error that
// says so, on a device named one and on one a session found; the device's
// sessions are unharmed.
func TestDeviceFiles(t *testing.T) {
	eachDevice(t, func(t *testing.T, kind sshtest.Kind) {
		ds := startIOS(t, kind, &devicetest.IOS{})
		read := func(p *Pool) {
			t.Helper()
			start := time.Now()
			err := withFiles(t, p, ds.srv, func(f *Files) error {
				_, err := f.Read(t.Context(), "/etc/hostname", 0, 100)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "the network device has no SFTP server, which the file tools need: use the device's own commands through ssh_run") {
				t.Errorf("a file read on a device: %v", err)
			}
			if took := time.Since(start); took >= sftpStartTimeout {
				t.Errorf("the file read failed after %v", took)
			}
		}
		read(newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}}))
		p := newDevicePool(t, ds.srv, PoolConfig{})
		if _, res := devJob(t, p, ds.srv, "show clock"); res.State != jobs.StateSucceeded {
			t.Fatalf("a command: %s %q", res.State, res.Error)
		}
		read(p)
		if _, res := devJob(t, p, ds.srv, "show clock"); res.State != jobs.StateSucceeded {
			t.Errorf("a command after: %s %q", res.State, res.Error)
		}
	})
}

// What answers the sftp subsystem and never speaks SFTP (a CLI waiting for
// a key) ends the file operation at sftpStartTimeout, not never.
func TestSFTPStartTimeout(t *testing.T) {
	if !sshtest.HaveOpenSSH() {
		t.Skip("needs OpenSSH's sshd")
	}
	old := sftpStartTimeout
	sftpStartTimeout = 500 * time.Millisecond
	t.Cleanup(func() { sftpStartTimeout = old })
	srv := sshtest.StartOpenSSH(t, sshtest.Options{SSHDConfig: []string{"ForceCommand sleep 3"}})
	p := newDevicePool(t, srv, PoolConfig{})
	err := withFiles(t, p, srv, func(f *Files) error {
		_, err := f.Read(t.Context(), "/etc/hostname", 0, 100)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "what answered the sftp subsystem is no SFTP server: no SFTP answer within 500ms") {
		t.Errorf("a silent sftp subsystem: %v", err)
	}
}
