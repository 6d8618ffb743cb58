// Package sshtest starts SSH servers for tests: a real OpenSSH sshd on a loopback
// port with a throwaway config, and an in-process x/crypto/ssh server that serves
// real PTY shells and can inject faults. Both are described by one Server type so
// that the same test suite runs against both. It exists for tests only; nothing in
// the sshjobs binary may import it.
package sshtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Kind names a test server implementation; it is also the subtest name used by Each.
type Kind string

const (
	KindOpenSSH   Kind = "openssh"
	KindInProcess Kind = "inprocess"
)

// Server is a running test SSH server. All paths are absolute, inside Dir.
type Server struct {
	Kind Kind
	Host string // "127.0.0.1"
	Port int
	User string // the login user: the user running the tests, or Options.User
	Dir  string // temp folder holding keys and configs
	// Home is $HOME in the server's sessions: a folder of the test's own
	// (under Dir), or Options.User's home.
	Home       string
	KeyFile    string // client private key (ed25519, unencrypted, OpenSSH format) authorized on the server
	KnownHosts string // known_hosts file that trusts this server's host key ("[127.0.0.1]:PORT ssh-ed25519 ...")
	HostKey    ssh.PublicKey
	// HostCert is the host certificate the server presents besides HostKey
	// (Options.HostCA), nil without one.
	HostCert  *ssh.Certificate
	SSHConfig string // ssh_config file with a `Host <Alias>` entry for this server
	Alias     string // "sshtest-" + Kind
	// Password is accepted for User by password and keyboard-interactive auth
	// in-process ("" for openssh); with Options.User it is that account's
	// password, as sudo asks for it (both kinds).
	Password string

	t       testing.TB
	opts    Options
	signer  ssh.Signer // the client key
	home    string
	account *testAccount // Options.User's account

	mu     sync.Mutex
	closed bool
	awake  chan struct{} // closed while not silent (in-process)
	conns  map[*conn]struct{}

	// in-process
	ln net.Listener
	wg sync.WaitGroup

	// openssh
	sshd *sshdProc
}

// Options shape the login environment; the zero value is a plain bash login.
type Options struct {
	// Shell is the login shell: /bin/bash by default in-process, the user's
	// passwd shell on openssh. A path ending in "busybox" runs its sh applet.
	Shell string
	// Banner is sent as the pre-authentication banner and also printed, like a
	// MOTD, through the PTY before a PTY shell starts (not for exec requests).
	Banner string
	// Env is extra NAME=VALUE environment for shells and commands.
	Env []string
	// KeyboardInteractive also offers keyboard-interactive auth with Password (in-process).
	KeyboardInteractive bool
	// SlowOutput delays each write of command output by this much (in-process).
	SlowOutput time.Duration
	// MaxSessions limits the session channels open at once on one connection,
	// as OpenSSH's MaxSessions does (its default is 10); 0 means 50. One more
	// is refused with "connect failed: open failed", as sshd refuses it.
	MaxSessions int
	// User, if set, must be TestUser: the server logs that account in (with
	// the client key) instead of the user running the tests. The account is
	// created as root if needed, with a password (Server.Password) and a
	// sudoers entry that asks for it every time; without root, useradd or
	// sudo the test is skipped (failed with SSHJOBS_REQUIRE_SSHD=1).
	User string
	// MaxAuthTries makes the server disconnect after this many failed
	// authentication attempts (sshd's MaxAuthTries; ServerConfig.MaxAuthTries
	// in-process). 0 keeps each server's default.
	MaxAuthTries int
	// SSHDConfig lines are written at the top of sshd_config (openssh only),
	// so that they win over sshtest's defaults: sshd keeps the first value it
	// reads for most keywords. E.g. "KbdInteractiveAuthentication yes".
	SSHDConfig []string
	// HostCA, if set, certifies the host key: the server also presents a
	// host certificate signed by it (Server.HostCert), as sshd's
	// HostCertificate does. HostCertPrincipals are its principals (none:
	// valid for any host name).
	HostCA             ssh.Signer
	HostCertPrincipals []string
	// Serve, if set, answers shell and exec requests in-process instead of
	// a login shell (command is "" for a shell): a network device's CLI
	// (internal/devicetest), which is no POSIX shell. A pty-req is accepted
	// and no PTY made: the CLI reads keys and echoes them itself. The
	// session ends with exit status 0 when Serve returns. The sftp
	// subsystem is refused, as most switches do. In-process only; for
	// openssh, give a ForceCommand in SSHDConfig.
	Serve func(rw io.ReadWriter, command string)
	// ListenAddress is the IPv4 address sshd listens on instead of
	// 127.0.0.1 (openssh only), e.g. a veth address in a network namespace
	// the test created and starts the server from (see faults). The
	// in-process server listens there too.
	ListenAddress string
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DropConnections abruptly closes every open client connection, as a network
// failure or a server crash would. Processes the sessions started get a hangup,
// as with a real sshd; setsid'ed processes survive.
func (s *Server) DropConnections() {
	if s.Kind == KindOpenSSH {
		s.sshd.signalSessions(sigKill)
		return
	}
	for _, c := range s.connList() {
		c.close()
	}
}

// SetSilent(true) makes the server a hung peer: the TCP connection stays open but
// global requests (keepalives) and channel data go unanswered until SetSilent(false).
// On openssh this stops (SIGSTOP) the sshd processes serving the connections open
// at the time of the call; connections made later are not affected.
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Kind == KindOpenSSH {
		if silent {
			s.sshd.signalSessions(sigStop)
		} else {
			s.sshd.signalSessions(sigCont)
		}
		return
	}
	select {
	case <-s.awake:
		if silent {
			s.awake = make(chan struct{})
		}
	default:
		if !silent {
			close(s.awake)
		}
	}
}

// Connections returns the number of live client connections. In-process it is
// exact; on openssh it counts sshd's per-connection children, which includes
// connections still authenticating and ones that are closing.
func (s *Server) Connections() int {
	if s.Kind == KindOpenSSH {
		return s.sshd.connections()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ClientConfig returns a config that authenticates with KeyFile and verifies the
// host key against KnownHosts.
func (s *Server) ClientConfig(t testing.TB) *ssh.ClientConfig {
	t.Helper()
	cb, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: []string{s.HostKey.Type()},
		Timeout:           10 * time.Second,
	}
}

// Each runs f as the subtests "openssh" and "inprocess", each with its own server.
// The openssh subtest is skipped when sshd is not installed (see StartOpenSSH).
func Each(t *testing.T, o Options, f func(t *testing.T, s *Server)) {
	t.Helper()
	t.Run(string(KindOpenSSH), func(t *testing.T) { f(t, StartOpenSSH(t, o)) })
	t.Run(string(KindInProcess), func(t *testing.T) { f(t, StartInProcess(t, o)) })
}

// Start starts one server for a test that needs only one: the real sshd when
// it is installed, else the in-process server.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if HaveOpenSSH() {
		return StartOpenSSH(t, o)
	}
	return StartInProcess(t, o)
}

// newServer fills in what both kinds share: the temp folder, the login user and
// the client key. It returns the new host key.
func newServer(t testing.TB, kind Kind, o Options) (*Server, ed25519.PrivateKey) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	// Not t.TempDir: its paths can be long, and ControlPath sockets placed in Dir
	// must fit in the 108 bytes of a unix socket address.
	dir, err := os.MkdirTemp("", "sshtest")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{
		Kind: kind, Host: o.listenAddress(), User: u.Username, Dir: dir,
		KeyFile:    filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		SSHConfig:  filepath.Join(dir, "ssh_config"),
		Alias:      "sshtest-" + string(kind),
		t:          t, opts: o, home: u.HomeDir,
		awake: make(chan struct{}),
		conns: map[*conn]struct{}{},
	}
	close(s.awake)
	if o.User != "" {
		if o.User != TestUser {
			t.Fatalf("sshtest: Options.User must be %q, not %q", TestUser, o.User)
		}
		a := ensureTestUser(t)
		s.account = &a
		s.User, s.home, s.Password = a.name, a.home, a.password
		s.Home = a.home
	} else if !slices.ContainsFunc(o.Env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") }) {
		// Sessions get a HOME of their own: the login reads no start-up files
		// of the developer's (a .bashrc that runs `pyenv rehash` makes each
		// login slow, and one killed mid-way leaves a lock that stalls every
		// later login for a minute), and ~/.cache spools stay in the test.
		home := filepath.Join(dir, "home")
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		s.opts.Env = append([]string{"HOME=" + home}, o.Env...)
		s.Home = home
	}
	clientKey := writeKey(t, s.KeyFile)
	if s.signer, err = ssh.NewSignerFromKey(clientKey); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	s.HostKey = hostSigner.PublicKey()
	if o.HostCA != nil {
		s.HostCert = &ssh.Certificate{
			Key: s.HostKey, Serial: 1, CertType: ssh.HostCert, KeyId: "sshtest host",
			ValidPrincipals: o.HostCertPrincipals,
			ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()),
			ValidBefore:     ssh.CertTimeInfinity,
		}
		if err := s.HostCert.SignCert(rand.Reader, o.HostCA); err != nil {
			t.Fatalf("sshtest: host certificate: %v", err)
		}
	}
	return s, hostKey
}

// writeKey generates an ed25519 key and writes it unencrypted in OpenSSH format,
// with the public half next to it, as ssh-keygen would.
func writeKey(t testing.TB, path string) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshtest")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return priv
}

// writeClientFiles writes known_hosts and ssh_config once the port is known.
func (s *Server) writeClientFiles() {
	s.t.Helper()
	kh := knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey) + "\n"
	cfg := fmt.Sprintf(`# Written by sshtest for %s.
Host %s
	HostName %s
	Port %d
	User %s
	IdentityFile %s
	IdentitiesOnly yes
	UserKnownHostsFile %s
	StrictHostKeyChecking yes
	BatchMode yes
`, s.Kind, s.Alias, s.Host, s.Port, s.User, s.KeyFile, s.KnownHosts)
	for path, text := range map[string]string{s.KnownHosts: kh, s.SSHConfig: cfg} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			s.t.Fatalf("sshtest: %v", err)
		}
	}
}

// shellArgs returns argv[0] for a shell: its base name, except that busybox is
// told to run its sh applet. login prefixes "-", which is how sshd asks for a
// login shell.
func shellArgs(shell string, login bool) string {
	name := filepath.Base(shell)
	if name == "busybox" {
		name = "sh"
	}
	if login {
		return "-" + name
	}
	return name
}

// passwdShell returns the login shell of name from /etc/passwd (os/user does
// not expose it), or "" when it cannot be found.
func passwdShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name {
			return fields[6]
		}
	}
	return ""
}

func (o Options) listenAddress() string {
	if o.ListenAddress != "" {
		return o.ListenAddress
	}
	return "127.0.0.1"
}

func (o Options) maxSessions() int {
	if o.MaxSessions > 0 {
		return o.MaxSessions
	}
	return 50
}
