package sshdial

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestDialKeyFile(t *testing.T) {
	sshtest.NoAgent(t)
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, s *sshtest.Server) {
		h := serverHost(t, s)
		c, info, err := (&Dialer{Logger: dialLogger(t)}).Dial(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := DialInfo{HostKeyFingerprint: ssh.FingerprintSHA256(s.HostKey), HostKeyStatus: HostKeyKnown, AuthMethod: AuthPublicKey}
		if info != want {
			t.Errorf("info = %+v, want %+v", info, want)
		}
		if out := runCmd(t, c, "echo hello"); out != "hello" {
			t.Errorf("echo: %q", out)
		}
	})
}

// encryptKey writes s's client key encrypted with passphrase (without a .pub
// next to it, so the public half must come from the file itself).
func encryptKey(t *testing.T, s *sshtest.Server, passphrase string) string {
	t.Helper()
	b, err := os.ReadFile(s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "enc", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_enc")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthEncryptedKey(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	enc := encryptKey(t, s, "correct horse")
	h := serverHost(t, s)
	h.IdentityFiles = []string{enc}
	env := map[string]string{sshconfig.EnvName(h.Alias) + "KEY_PASS": "correct horse"}
	d := &Dialer{Secrets: EnvSecrets{Getenv: func(k string) string { return env[k] }}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthPublicKey {
		t.Errorf("AuthMethod = %q, want publickey", info.AuthMethod)
	}

	// Without a passphrase the key is skipped, and the failure says why.
	_, _, err = (&Dialer{}).Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AuthError", err)
	}
	for _, want := range []string{"encrypted and no passphrase", enc, "KEY_PASS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	// A wrong one likewise.
	env[sshconfig.EnvName(h.Alias)+"KEY_PASS"] = "wrong"
	if _, _, err = d.Dial(context.Background(), h); err == nil || !strings.Contains(err.Error(), "passphrase is wrong") {
		t.Errorf("wrong passphrase: err = %v", err)
	}
}

func TestAuthPassword(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	h.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	d := &Dialer{Secrets: StaticSecrets{SecretPassword: s.Password}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info.AuthMethod != AuthPassword {
		t.Errorf("AuthMethod = %q, want password", info.AuthMethod)
	}
	if out := runCmd(t, c, "echo ok"); out != "ok" {
		t.Errorf("echo: %q", out)
	}
}

// kiServer is an SSH server that accepts only keyboard-interactive auth,
// asking one hidden "Password:" question (as PAM does); sshtest's server also
// takes plain password auth, which the dialer prefers.
func kiServer(t *testing.T, password string) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	return kiServerAsk(t, func(ask ssh.KeyboardInteractiveChallenge) bool {
		ans, err := ask("", "", []string{"Password: "}, []bool{false})
		return err == nil && len(ans) == 1 && ans[0] == password
	})
}

// kiServerAsk is kiServer with the exchange written by the test: login
// succeeds when challenge returns true.
func kiServerAsk(t *testing.T, challenge func(ask ssh.KeyboardInteractiveChallenge) bool) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		KeyboardInteractiveCallback: func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if challenge(ask) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("wrong")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nch := range chans {
					nch.Reject(ssh.Prohibited, "auth test only")
				}
			}()
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

// kiHost resolves the alias "ki" for a kiServer, with no key and no agent.
func kiHost(t *testing.T, addr string) *sshconfig.Host {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Host ki\n  HostName 127.0.0.1\n  Port "+port+
		"\n  User someone\n  IdentityAgent none\n  IdentityFile /nonexistent\n  UserKnownHostsFile "+kh+"\n")
	h, err := (&sshconfig.Resolver{ConfigFile: cfg}).Resolve(context.Background(), "ki")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAuthKeyboardInteractive(t *testing.T) {
	sshtest.NoAgent(t)
	addr, key := kiServer(t, "s3cret")
	h := kiHost(t, addr)
	env := map[string]string{"OVRD_KI_PASS": "s3cret"}
	d := &Dialer{Secrets: EnvSecrets{Getenv: func(k string) string { return env[k] }}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthKeyboardInteractive || info.HostKeyStatus != HostKeyTrustedNow ||
		info.HostKeyFingerprint != ssh.FingerprintSHA256(key) {
		t.Errorf("info = %+v, want keyboard-interactive, trusted_now, %s", info, ssh.FingerprintSHA256(key))
	}

	env["OVRD_KI_PASS"] = "wrong"
	_, _, err = d.Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "server accepts keyboard-interactive") {
		t.Errorf("wrong password: err = %v, want an AuthError listing keyboard-interactive", err)
	}
}

func TestAuthFailureMessage(t *testing.T) {
	sshtest.NoAgent(t)
	sshtest.TempHome(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	// A key the server does not know.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	stranger := sshtest.WriteFile(t, filepath.Join(homeDir(), ".ssh", "id_ed25519"), string(pem.EncodeToMemory(block)))
	h.IdentityFiles = []string{stranger, filepath.Join(homeDir(), ".ssh", "id_rsa")}

	_, _, err := (&Dialer{}).Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AuthError", err)
	}
	t.Log(err)
	for _, want := range []string{
		"auth failed for " + h.Key(),
		"tried publickey (1 key: ~/.ssh/id_ed25519)",
		"password (none known)",
		"publickey,password", // in the server's order: checked below
		"OVRD_" + strings.ToUpper(strings.ReplaceAll(h.Alias, "-", "_")) + "_PASS",
	} {
		if want == "publickey,password" {
			if !strings.Contains(err.Error(), "server accepts publickey,password") &&
				!strings.Contains(err.Error(), "server accepts password,publickey") {
				t.Errorf("message lacks the server's methods")
			}
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q", want)
		}
	}
	// A wrong password is reported as tried.
	_, _, err = (&Dialer{Secrets: StaticSecrets{SecretPassword: "nope"}}).Dial(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "tried publickey (1 key: ~/.ssh/id_ed25519), password;") ||
		!strings.Contains(err.Error(), "check the password in "+sshconfig.EnvName(h.Alias)+"PASS") {
		t.Errorf("wrong password: err = %v", err)
	}
}

// unknownKeys writes n fresh ed25519 keys the server does not know into
// ~/.ssh and returns their paths.
func unknownKeys(t *testing.T, n int) []string {
	t.Helper()
	var paths []string
	for i := range n {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(homeDir(), ".ssh", "id_stranger"+string(rune('a'+i)))
		paths = append(paths, sshtest.WriteFile(t, p, string(pem.EncodeToMemory(block))))
	}
	return paths
}

// Every way a server ends authentication reaches the user as one AuthError:
// the methods tried, the methods the server accepts, and advice that names
// only what exists (ssh_config IdentityFile, ssh-agent, OVRD_ variables),
// never x/crypto's own wording. One case per server behaviour, each with
// the x/crypto error it gives (pinned in authFailureTexts).
func TestAuthFailureServerBehaviours(t *testing.T) {
	sshtest.NoAgent(t)
	sshtest.TempHome(t)
	type tc struct {
		name    string
		kind    sshtest.Kind
		opts    sshtest.Options
		keys    int      // unknown keys offered
		want    []string // parts of the message a user relies on
		notWant []string
	}
	keyAdvice := "give a key the server accepts (IdentityFile in ssh_config, "
	agentAdvice := "a key loaded in ssh-agent, or `sshjobs secret set "
	cases := []tc{{
		// x/crypto: "ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain"
		name: "no methods left", kind: sshtest.KindOpenSSH,
		want:    []string{"tried publickey (no usable key: no ssh-agent (SSH_AUTH_SOCK is not set), no key file (looked for ~/.ssh/id_ed25519)); server accepts publickey;", keyAdvice, agentAdvice},
		notWant: []string{"_PASS"},
	}, {
		// x/crypto: "ssh: unexpected message type 51 (expected 60)": sshd
		// offers keyboard-interactive but, without PAM, has no device for it.
		name: "kbd-int refused at once", kind: sshtest.KindOpenSSH,
		opts: sshtest.Options{SSHDConfig: []string{"KbdInteractiveAuthentication yes"}},
		want: []string{"tried publickey (no usable key: no ssh-agent (SSH_AUTH_SOCK is not set), no key file (looked for ~/.ssh/id_ed25519)), keyboard-interactive (the server refused it without asking anything); " +
			"server accepts publickey,keyboard-interactive;", keyAdvice, agentAdvice},
		notWant: []string{"_PASS"},
	}, {
		// sshd disconnects: `ssh: disconnect, reason 2: "Too many authentication failures"`.
		name: "too many failures", kind: sshtest.KindOpenSSH,
		opts: sshtest.Options{MaxAuthTries: 2}, keys: 3,
		want: []string{"tried publickey (3 keys: ~/.ssh/id_strangera, ~/.ssh/id_strangerb, ~/.ssh/id_strangerc); server accepts publickey;",
			"the server hung up after too many failed attempts (its MaxAuthTries)", "IdentitiesOnly yes", keyAdvice, agentAdvice},
		notWant: []string{"_PASS"},
	}, {
		// x/crypto's server words it in lower case.
		name: "too many failures", kind: sshtest.KindInProcess,
		opts: sshtest.Options{MaxAuthTries: 2}, keys: 3,
		want: []string{"tried publickey (3 keys: ~/.ssh/id_strangera, ~/.ssh/id_strangerb, ~/.ssh/id_strangerc); server accepts ",
			"the server hung up after too many failed attempts (its MaxAuthTries)", keyAdvice, agentAdvice,
			"or set the password in OVRD_SSHTEST_INPROCESS_PASS"},
	}}
	for _, c := range cases {
		t.Run(c.name+"/"+string(c.kind), func(t *testing.T) {
			var s *sshtest.Server
			if c.kind == sshtest.KindOpenSSH {
				s = sshtest.StartOpenSSH(t, c.opts)
			} else {
				s = sshtest.StartInProcess(t, c.opts)
			}
			h := serverHost(t, s)
			h.IdentityFiles = append(unknownKeys(t, c.keys), filepath.Join(homeDir(), ".ssh", "id_ed25519"))
			h.IdentityAgent = "" // and SSH_AUTH_SOCK is empty: no agent, as for a new user
			_, _, err := (&Dialer{Logger: dialLogger(t)}).Dial(context.Background(), h)
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an AuthError", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(c.want, "auth failed for "+h.Key()+": ") {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q", w)
				}
			}
			// Nothing that does not exist yet, and not x/crypto's wording.
			for _, w := range append(c.notWant, "ssh_connect", "ssh: ", "unexpected message") {
				if strings.Contains(msg, w) {
					t.Errorf("message has %q", w)
				}
			}
		})
	}
}

// keyboard-interactive gets the password only for a question that is
// recognisably a password prompt and hidden; a one-time code, a new
// password or anything else fails the login with the question quoted, and
// the password never reaches the server in answer to it.
func TestAuthKbdIntAnswersOnlyPasswords(t *testing.T) {
	sshtest.NoAgent(t)
	const pw = "s3cret-kbd"
	type round struct {
		q    string
		echo bool
		pw   bool // the password may be the answer
	}
	cases := []struct {
		name   string
		rounds []round
		ok     bool   // login succeeds
		asked  string // the question quoted in the error
	}{
		{"plain", []round{{"Password: ", false, true}}, true, ""},
		{"openssh", []round{{"someone@ki's password: ", false, true}}, true, ""},
		{"pam for", []round{{"Password for someone: ", false, true}}, true, ""},
		{"otp", []round{{"Verification code: ", false, false}}, false, "Verification code:"},
		{"passcode", []round{{"Enter PASSCODE: ", false, false}}, false, "Enter PASSCODE:"},
		{"new password", []round{{"New password: ", false, false}}, false, "New password:"},
		{"echoed", []round{{"Password: ", true, false}}, false, "Password:"},
		{"password then otp", []round{{"Password: ", false, true}, {"Verification code: ", false, false}}, false, "Verification code:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var leaked []string // questions that were answered with the password
			addr, _ := kiServerAsk(t, func(ask ssh.KeyboardInteractiveChallenge) bool {
				for _, r := range c.rounds {
					ans, err := ask("", "", []string{r.q}, []bool{r.echo})
					if err != nil || len(ans) != 1 {
						return false
					}
					if ans[0] == pw && !r.pw {
						mu.Lock()
						leaked = append(leaked, r.q)
						mu.Unlock()
					}
					if ans[0] != pw {
						return false
					}
				}
				return true
			})
			h := kiHost(t, addr)
			d := &Dialer{Secrets: StaticSecrets{SecretPassword: pw}, Logger: dialLogger(t)}
			c2, info, err := d.Dial(context.Background(), h)
			mu.Lock()
			if len(leaked) > 0 {
				t.Errorf("the password was sent in answer to %q", leaked)
			}
			mu.Unlock()
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				c2.Close()
				if info.AuthMethod != AuthKeyboardInteractive {
					t.Errorf("AuthMethod = %q", info.AuthMethod)
				}
				return
			}
			if err == nil {
				c2.Close()
				t.Fatal("login succeeded")
			}
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an AuthError", err)
			}
			t.Log(err)
			want := fmt.Sprintf("keyboard-interactive (the server asked %q, a question sshjobs cannot answer", c.asked)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q", want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("message has the password")
			}
		})
	}
}

// Advice names only what sshjobs reads today (ssh_config, ssh-agent, the
// OVRD_ variables), never a command or tool parameter that does not exist.
func TestAuthAdviceNamesOnlyWhatExists(t *testing.T) {
	msgs := map[string]string{
		"auth":  (&AuthError{Host: "u@h:22", alias: "web-1", secretAlias: "web-1", storeTarget: "web-1"}).Error(),
		"alias": (&AuthError{Host: "u@h:22", storeTarget: "u@h:22"}).Error(),
	}
	for name, msg := range msgs {
		for _, bad := range []string{"ssh_connect", "save=true", "password=", "private_key_path", "passphrase="} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s: %q advises %q", name, msg, bad)
			}
		}
	}
	for name, want := range map[string][]string{
		"auth":  {"set the password in OVRD_WEB_1_PASS", "`sshjobs secret set web-1`", "`sshjobs secret set web-1 --key FILE`"},
		"alias": {"OVRD_{ALIAS}_PASS", "`sshjobs secret set u@h:22`"},
	} {
		for _, w := range want {
			if !strings.Contains(msgs[name], w) {
				t.Errorf("%s: %q lacks %q", name, msgs[name], w)
			}
		}
	}
}

// Once the server has begun answering auth requests, an error in a wording
// not pinned in xcryptoAuthFailures is still an AuthError (with x/crypto's
// text as a note); before that it is left alone.
func TestAuthFailureUnknownWording(t *testing.T) {
	h := &sshconfig.Host{Alias: "web", User: "u", HostName: "h", Port: 22}
	odd := errors.New("ssh: a wording x/crypto has not used yet")
	a := newAuthRun(context.Background(), h, nil, dialLogger(t))
	if err := a.failure(odd); err != odd {
		t.Errorf("before auth: %v, want the error unchanged", err)
	}
	a.started = true
	err := a.failure(odd)
	var ae *AuthError
	if !errors.As(err, &ae) || !errors.Is(err, odd) ||
		!strings.Contains(err.Error(), "the server ended authentication: ssh: a wording x/crypto has not used yet") {
		t.Errorf("after auth began: %v, want an AuthError noting the cause", err)
	}
}

// TestHelperNC is not a test: it is the nc of sshtest.NCProxyCommand.
func TestHelperNC(t *testing.T) { sshtest.HelperNC() }

// homeDir is where the tests' default key files live.
func homeDir() string {
	h, err := os.UserHomeDir()
	if err != nil {
		panic(err)
	}
	return h
}
