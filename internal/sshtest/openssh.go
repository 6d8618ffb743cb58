package sshtest

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

const (
	sigKill = syscall.SIGKILL
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// HaveOpenSSH reports whether OpenSSH's sshd is installed.
func HaveOpenSSH() bool {
	fi, err := os.Stat(sshdPath)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// StartOpenSSH starts /usr/sbin/sshd on a free loopback port with a throwaway
// config and host key, and stops it when the test ends. It skips the test when
// sshd is not installed, unless SSHJOBS_REQUIRE_SSHD=1 (CI), where it fails it.
//
// The login shell is the user's own, as with any sshd. When Options.Shell names
// another one, or Options.Banner is set, a ForceCommand wrapper stands in for it:
// it runs exec requests with Options.Shell -c, prints the banner on PTY logins,
// and then execs Options.Shell -l. Options.Env is applied with SetEnv.
// KeyboardInteractive and SlowOutput are in-process only; SSHDConfig lines
// come first in sshd_config.
func StartOpenSSH(t testing.TB, o Options) *Server {
	t.Helper()
	if !HaveOpenSSH() {
		if os.Getenv("SSHJOBS_REQUIRE_SSHD") == "1" {
			t.Fatalf("sshtest: %s is not installed and SSHJOBS_REQUIRE_SSHD=1", sshdPath)
		}
		t.Skipf("sshtest: %s is not installed", sshdPath)
	}
	s, hostKey := newServer(t, KindOpenSSH, o)
	hostKeyFile := filepath.Join(s.Dir, "ssh_host_ed25519_key")
	block, err := ssh.MarshalPrivateKey(hostKey, "sshtest host")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	files := map[string][]byte{
		hostKeyFile:                             pem.EncodeToMemory(block),
		filepath.Join(s.Dir, "authorized_keys"): ssh.MarshalAuthorizedKey(s.signer.PublicKey()),
	}
	if s.HostCert != nil {
		files[hostKeyFile+"-cert.pub"] = ssh.MarshalAuthorizedKey(s.HostCert)
	}
	if o.Banner != "" {
		files[filepath.Join(s.Dir, "banner")] = []byte(o.Banner)
	}
	if s.needsWrapper() {
		files[filepath.Join(s.Dir, "login.sh")] = []byte(s.wrapperScript())
	}
	mode := os.FileMode(0o600)
	if s.account != nil {
		// sshd reads authorized_keys (and the user's shell the wrapper) as
		// the user: let it in. The private keys stay 0600.
		mode = 0o644
		if err := os.Chmod(s.Dir, 0o711); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	for path, data := range files {
		m := mode
		if path == hostKeyFile {
			m = 0o600
		}
		if err := os.WriteFile(path, data, m); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	if os.Geteuid() == 0 {
		// sshd running as root refuses to start without its privilege separation folder.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}

	// The port is picked by binding :0 and closing it, so another process can take
	// it before sshd binds; then sshd exits and we try another.
	for attempt := 1; ; attempt++ {
		s.Port = freePort(t, s.Host)
		cfg := filepath.Join(s.Dir, "sshd_config")
		if err := os.WriteFile(cfg, []byte(s.sshdConfig(hostKeyFile)), 0o600); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		p, err := startSSHD(cfg, s.Host, s.Port)
		if err == nil {
			s.sshd = p
			break
		}
		if errors.Is(err, errPortTaken) && attempt < 5 {
			continue
		}
		t.Fatalf("sshtest: starting sshd: %v\nsshd log:\n%s", err, p.log.String())
	}
	t.Cleanup(func() {
		s.sshd.stop()
		if t.Failed() && s.sshd.log.Len() > 0 {
			t.Logf("sshtest: sshd log:\n%s", s.sshd.log.String())
		}
	})
	s.writeClientFiles()
	// The readiness probe opened a connection; let its child go so that
	// Connections starts at 0.
	for deadline := time.Now().Add(2 * time.Second); s.Connections() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func (s *Server) needsWrapper() bool {
	sh := s.opts.Shell
	return (sh != "" && sh != passwdShell(s.User)) || s.opts.Banner != ""
}

func (s *Server) sshdConfig(hostKeyFile string) string {
	var b strings.Builder
	b.WriteString("# Written by sshtest; a throwaway sshd for tests.\n")
	for _, l := range s.opts.SSHDConfig {
		if strings.ContainsAny(l, "\n\r") {
			s.t.Fatalf("sshtest: sshd_config line %q has a line break", l)
		}
		b.WriteString(l + "\n")
	}
	if s.opts.MaxAuthTries > 0 {
		fmt.Fprintf(&b, "MaxAuthTries %d\n", s.opts.MaxAuthTries)
	}
	fmt.Fprintf(&b, `ListenAddress %s
Port %d
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PrintMotd no
PrintLastLog no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitUserRC no
AllowTcpForwarding yes
LogLevel ERROR
MaxStartups 200
MaxSessions %d
Subsystem sftp internal-sftp -d %s
`, s.Host, s.Port, hostKeyFile, filepath.Join(s.Dir, "authorized_keys"), s.opts.maxSessions(), s.sftpHome())
	// No AcceptEnv line: sshd then accepts no "env" requests, unlike the
	// in-process server, which accepts them all.
	if s.HostCert != nil {
		fmt.Fprintf(&b, "HostCertificate %s-cert.pub\n", hostKeyFile)
	}
	if s.opts.Banner != "" {
		fmt.Fprintf(&b, "Banner %s\n", filepath.Join(s.Dir, "banner"))
	}
	// One SetEnv line for all: sshd keeps only the first SetEnv line.
	if len(s.opts.Env) > 0 {
		b.WriteString("SetEnv")
		for _, kv := range s.opts.Env {
			if strings.ContainsAny(kv, "\n\r") || !strings.Contains(kv, "=") {
				s.t.Fatalf("sshtest: openssh cannot pass env %q", kv)
			}
			r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
			fmt.Fprintf(&b, " \"%s\"", r.Replace(kv))
		}
		b.WriteString("\n")
	}
	if s.needsWrapper() {
		fmt.Fprintf(&b, "ForceCommand /bin/sh %s\n", filepath.Join(s.Dir, "login.sh"))
	}
	return b.String()
}

// wrapperScript is the ForceCommand that stands in for the login shell. sshd
// runs it for shells, exec requests and subsystems alike, so it dispatches on
// SSH_ORIGINAL_COMMAND.
func (s *Server) wrapperScript() string {
	sh := s.opts.Shell
	if sh == "" {
		sh = passwdShell(s.User)
	}
	run := shellQuote(sh)
	if filepath.Base(sh) == "busybox" {
		run += " sh"
	}
	motd := ":"
	if s.opts.Banner != "" {
		// sshd prints the MOTD only for PTY logins.
		motd = "[ -t 1 ] && cat " + shellQuote(filepath.Join(s.Dir, "banner"))
	}
	return fmt.Sprintf(`# Written by sshtest: the login shell for this test sshd.
if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; then
	c=$SSH_ORIGINAL_COMMAND
	unset SSH_ORIGINAL_COMMAND
	[ "$c" = internal-sftp ] && exec /usr/lib/openssh/sftp-server
	exec %[1]s -c "$c"
fi
%[2]s
exec %[1]s -l
`, run, motd)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func freePort(t testing.TB, host string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var errPortTaken = errors.New("port already in use")

// sshdProc is a running sshd listener.
type sshdProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    Buffer
}

var penalties struct {
	once sync.Once
	args []string
}

// penaltyArgs turns off PerSourcePenalties (OpenSSH 9.8+), which would otherwise
// lock 127.0.0.1 out for a while after DropConnections kills sshd children or a
// test hangs up before authenticating. Older sshd rejects the option, hence the probe.
func penaltyArgs(cfg string) []string {
	penalties.once.Do(func() {
		args := []string{"-o", "PerSourcePenalties=no"}
		if exec.Command(sshdPath, append([]string{"-t", "-f", cfg}, args...)...).Run() == nil {
			penalties.args = args
		}
	})
	return penalties.args
}

func startSSHD(cfg, host string, port int) (*sshdProc, error) {
	p := &sshdProc{exited: make(chan struct{})}
	// sshd re-executes itself per connection, which is why the path is absolute.
	p.cmd = exec.Command(sshdPath, append([]string{"-D", "-e", "-f", cfg}, penaltyArgs(cfg)...)...)
	p.cmd.Stderr = &p.log
	// Pdeathsig: do not leave an sshd behind when the test binary dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Per-connection children (which setsid) inherit stderr; do not wait on them.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		return p, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-p.exited:
			if strings.Contains(p.log.String(), "Address already in use") {
				return p, errPortTaken
			}
			return p, fmt.Errorf("sshd exited: %v", p.cmd.ProcessState)
		default:
		}
		if sshBanner(addr) {
			return p, nil
		}
	}
	p.stop()
	return p, errors.New("sshd did not answer within 10s")
}

// sshBanner reports whether an SSH server answers on addr.
func sshBanner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.HasPrefix(line, "SSH-2.0-")
}

// stop kills the listener and everything under it. The per-connection children
// must be found first: they are in their own sessions, and once the listener is
// gone they are reparented and can no longer be told apart.
func (p *sshdProc) stop() {
	pids := descendants(p.cmd.Process.Pid, false)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.exited
}

// signalSessions signals the sshd processes serving connections, leaving the
// listener and the users' processes alone.
func (p *sshdProc) signalSessions(sig syscall.Signal) {
	for _, pid := range descendants(p.cmd.Process.Pid, true) {
		syscall.Kill(pid, sig)
	}
}

// connections counts the listener's live children: one per connection.
func (p *sshdProc) connections() int {
	n := 0
	for _, pr := range procs() {
		if pr.ppid == p.cmd.Process.Pid && pr.state != 'Z' {
			n++
		}
	}
	return n
}

type procInfo struct {
	pid, ppid int
	comm      string
	state     byte
}

// procs reads every process's parent, command name and state from /proc.
func procs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may contain spaces and parentheses.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, procInfo{pid: pid, ppid: ppid, comm: string(b[open+1 : end]), state: f[0][0]})
	}
	return out
}

// descendants lists the processes below root; with sshdOnly, only sshd's own
// (named sshd, or sshd-session and sshd-auth on OpenSSH 9.8+).
func descendants(root int, sshdOnly bool) []int {
	kids := map[int][]procInfo{}
	for _, p := range procs() {
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		for _, k := range kids[queue[0]] {
			queue = append(queue, k.pid)
			if !sshdOnly || strings.HasPrefix(k.comm, "sshd") {
				out = append(out, k.pid)
			}
		}
		queue = queue[1:]
	}
	return out
}
