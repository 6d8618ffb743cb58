package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// The link the test builds: a veth pair between two namespaces of its own,
// with addresses that exist only inside them.
const (
	serverAddr = "10.213.0.1"
	clientAddr = "10.213.0.2"
	serverMAC  = "02:00:0a:d5:00:01"
	clientMAC  = "02:00:0a:d5:00:02"
)

// link is a veth pair between a server and a client namespace.
type link struct {
	t              *testing.T
	server, client string // namespace names
	serverDev      string
}

// requireNetns skips the test, loudly, where network namespaces cannot be
// made, unless CI said they can (SSHJOBS_REQUIRE_NETNS=1): then it fails.
func requireNetns(t *testing.T) {
	t.Helper()
	err := exec.Command("unshare", "-n", "true").Run()
	if err == nil && os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SSHJOBS_REQUIRE_NETNS") == "1" {
		t.Fatalf("faults: cannot make a network namespace (unshare -n true: %v, euid %d) and SSHJOBS_REQUIRE_NETNS=1", err, os.Geteuid())
	}
	t.Skipf("faults: SKIPPED, NOT TESTED: no network namespaces here (unshare -n true: %v, euid %d); CI sets SSHJOBS_REQUIRE_NETNS=1", err, os.Geteuid())
}

// newLink creates the two namespaces and the veth pair, and deletes them
// when the test ends, failed or not.
func newLink(t *testing.T) *link {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("sjf%d-%04x", os.Getpid(), rand.IntN(1<<16))
	l := &link{t: t, server: id + "-s", client: id + "-c", serverDev: "sjf-srv"}
	for _, ns := range []string{l.server, l.client} {
		l.ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	// Created inside the namespaces: the devices never exist outside them.
	l.ip("link", "add", l.serverDev, "address", serverMAC, "netns", l.server, "type", "veth",
		"peer", "name", "sjf-cli", "address", clientMAC, "netns", l.client)
	l.ip("-n", l.server, "addr", "add", serverAddr+"/30", "dev", l.serverDev)
	l.ip("-n", l.client, "addr", "add", clientAddr+"/30", "dev", "sjf-cli")
	// Fixed neighbours: with the link down, ARP would fail and the kernel
	// report "no route to host"; a cable cut elsewhere says nothing at all.
	l.ip("-n", l.server, "neigh", "replace", clientAddr, "lladdr", clientMAC, "dev", l.serverDev, "nud", "permanent")
	l.ip("-n", l.client, "neigh", "replace", serverAddr, "lladdr", serverMAC, "dev", "sjf-cli", "nud", "permanent")
	l.ip("-n", l.server, "link", "set", l.serverDev, "up")
	l.ip("-n", l.client, "link", "set", "sjf-cli", "up")
	return l
}

func (l *link) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cut takes the server's end of the link down: the client's packets vanish
// without an answer, a FIN, a reset or an ICMP error (the neighbours are
// fixed), and so do the server's.
func (l *link) cut() { l.ip("-n", l.server, "link", "set", l.serverDev, "down") }

// restore brings the link back.
func (l *link) restore() { l.ip("-n", l.server, "link", "set", l.serverDev, "up") }

// inNetns runs f on this goroutine's OS thread moved into namespace ns:
// processes it starts and sockets it opens live there. Threads the runtime
// starts meanwhile do not inherit it (Go starts them from a clean template
// thread while one is locked).
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		// Back home before the thread is shared again; a thread that
		// cannot go back stays locked and dies with this goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

// TestLinkCutWithoutFIN runs sshd in one namespace and sshjobs in another,
// and takes the link between them down while a shell job and a detached job
// run: packets vanish, nobody sends a FIN. The shell job ends lost within the
// keepalive bound; no call blocks past its wait plus one second; the detached
// job, which finishes during the cut, is re-attached once the link is back
// and completes byte-exact; the host then works again.
func TestLinkCutWithoutFIN(t *testing.T) {
	l := newLink(t)
	var srv *sshtest.Server
	inNetns(t, l.server, func() {
		srv = sshtest.StartOpenSSH(t, sshtest.Options{ListenAddress: serverAddr})
	})
	env := serverEnv(srv, filepath.Join(t.TempDir(), "sshjobs.db"))
	env = append(env, "SSHJOBS_SSH_CONFIG="+faultyHost(t, srv))
	c := start(t, env, []string{"ip", "netns", "exec", l.client})
	sc := startScenario(t, c)

	cut := time.Now()
	l.cut()
	took := sc.duringFault(t, cut)
	if took > lostBound {
		t.Errorf("the shell job ended lost %v after the cut; want within %v", took, lostBound)
	}
	// A little longer down: the detached job's follow has been retrying.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		c.job("ssh_job", map[string]any{"job_id": sc.detached, "wait_s": 1, "max_output": 0})
	}
	l.restore()
	sc.afterFault(t)
}
