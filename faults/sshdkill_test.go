package faults

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// TestSSHDChildKilled kills the sshd processes serving sshjobs' connection
// (found by sshd's pid tree; the users' processes stay) while a shell job and
// a detached job run: the shell job ends lost within the keepalive bound, no
// call blocks past its wait plus one second, the detached job (which
// finishes meanwhile) is re-attached and completes byte-exact, and the host
// works again.
func TestSSHDChildKilled(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		env := serverEnv(srv, filepath.Join(t.TempDir(), "sshjobs.db"))
		env = append(env, "SSHJOBS_SSH_CONFIG="+faultyHost(t, srv))
		c := start(t, env, nil)
		sc := startScenario(t, c)

		cut := time.Now()
		srv.DropConnections()
		if took := sc.duringFault(t, cut); took > lostBound {
			t.Errorf("the shell job ended lost %v after its sshd was killed; want within %v", took, lostBound)
		}
		sc.afterFault(t)
	})
}
